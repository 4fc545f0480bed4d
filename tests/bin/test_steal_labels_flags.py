"""copycat-steal-labels refuses impossible strategy options with one message and exit 2 (a real subprocess)."""

import os
import subprocess
import sys


def test_adaptive_without_a_budget_and_an_unknown_transform_are_user_errors(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    base = [sys.executable, "-m", "copycat_bin.steal_labels", f"--images={tmp_path}", "--oracle=somewhere",
            f"--output={tmp_path / 'out'}"]
    done = subprocess.run(base + ["--strategy=adaptive", "--pool_transforms=grayscale+sepia"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "--strategy=adaptive needs --max_queries" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(base + ["--max_queries=10", "--pool_transforms=grayscale+sepia"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "unknown transform 'sepia'" in done.stderr, done.stderr


_MISSPELT = """
import json, sys
from absl import flags
import copycat_bin.steal_labels as binary
from copycat_tf.errors import CopycatError
argv = ["copycat-steal-labels", "--images=i", "--oracle=somewhere", "--output=o", "--max_queries=10",
        "--pool_transforms=grayscale+sepia"]
flags.FLAGS(argv)
try:
    binary.main(argv)
    refused = None
except CopycatError as error:
    refused = str(error)
print(json.dumps({"refused": refused, "beam": "apache_beam" in sys.modules, "tf": "tensorflow" in sys.modules}))
"""


def test_a_misspelt_transform_is_refused_before_beam_or_tensorflow_start():
    import json

    done = subprocess.run([sys.executable, "-c", _MISSPELT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "unknown transform 'sepia'" in found["refused"]
    assert not found["beam"] and not found["tf"]
