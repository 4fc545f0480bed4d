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
