"""Running stage binaries from a composing tool (demo, experiments): one process per step, skipped when done."""

import logging
import os
import subprocess
import sys
import time

from copycat_tf.errors import CopycatError

log = logging.getLogger("copycat.stages")


def run_stage(name: str, args: list[str], done: str, prefix: str = "copycat") -> None:
    """Run ``copycat-NAME`` with ``args`` unless the marker file ``done`` exists; a failure stops with its stderr."""
    what = f"{name} -> {os.path.basename(os.path.dirname(done))}"
    if os.path.exists(done):
        print(f"[{prefix}] {what}: already done", flush=True)
        return
    started = time.time()
    print(f"[{prefix}] {what} ...", flush=True)
    command = [sys.executable, "-m", f"copycat_bin.{name.replace('-', '_')}", *args]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise CopycatError(f"step {name} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    last = result.stdout.strip().splitlines()[-1:] or [""]
    print(f"[{prefix}] {what} done in {time.time() - started:.0f} s: {last[0]}", flush=True)
