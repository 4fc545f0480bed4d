"""Toy stage binaries for the plan executor's signal test (tests/copycat_tf/test_plan.py).

``--role=service``: writes its pid to OUTPUT/pid, announces itself in OUTPUT/ready and waits (a background step).
``--role=step``: writes its pid to OUTPUT/pid and waits (a long foreground step).
"""

import os
import sys
import time

if __name__ == "__main__":
    options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    output = options["output"]
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "pid"), "w") as handle:
        handle.write(str(os.getpid()))
    if options["role"] == "service":
        with open(os.path.join(output, "ready"), "w") as handle:
            handle.write("ready\n")
    time.sleep(600)
