"""A toy stage binary for tests/copycat_tf/test_stages.py: writes OUTPUT/done.txt with its arguments, whether
``fractions`` was imported before it started (a forked step's server preloads it), how many objects the garbage
collector leaves out, whether the plan's own main script (which defines an absl flag) ran again in it, its parent's
pid and its temporary folder.
``--burn=SECONDS`` spends that much CPU time first; ``--crash`` ends it with SIGSEGV."""

import gc
import json
import os
import sys
import tempfile
import time

if __name__ == "__main__":
    preloaded = "fractions" in sys.modules
    frozen = gc.get_freeze_count()  # objects the garbage collector leaves out (the server's, in a forked step)
    from absl import flags

    main_again = "output" in flags.FLAGS  # the flag of the plan's own main script, run again in this step
    output = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--output="))
    if any(a.startswith("--fail=") for a in sys.argv[1:]):
        print("toy stage failing as asked", file=sys.stderr)
        sys.exit(int(next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--fail="))))
    if "--crash" in sys.argv[1:]:
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    burn = float(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--burn=")), 0))
    while time.process_time() < burn:
        pass
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "done.txt"), "w") as handle:
        json.dump({"args": sys.argv[1:], "preloaded": preloaded, "frozen": frozen, "parent": os.getppid(),
                   "main_again": main_again,
                   "gpu_memory_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
                   "toy_setting": os.environ.get("COPYCAT_TOY_SETTING"), "tmpdir": tempfile.gettempdir()}, handle)
    print("toy stage done")
