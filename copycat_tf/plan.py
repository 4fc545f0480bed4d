"""Experiments as plans: a list of stage calls, built without running anything, and one executor for them.

A :class:`StageCall` names a stage binary, its arguments and the file that marks it finished. Plans
(``copycat_tf.experiment.plan``) are pure functions of a config and an output folder, so they are
tested by comparing call lists, in milliseconds. :func:`execute` runs the calls in order, each in a
process of its own (or through any other ``run`` function, as tests do), skipping those whose marker
exists, through the lake's file layer so ``gs://`` outputs work like local ones. The stages a plan may
call are those of the registry, ``copycat_tf.stages``.
"""

import dataclasses
import logging
import os
import posixpath
import subprocess
import sys
import time
from typing import Callable, Iterable, Sequence

from copycat_tf import stages
from copycat_tf.errors import CopycatError

log = logging.getLogger("copycat.plan")


@dataclasses.dataclass(frozen=True)
class StageCall:
    """One step of a plan: ``copycat-STAGE ARGS``, finished when ``done`` exists.

    A ``background`` call is a service the later calls use (``serve``): it is started every time the plan
    runs (a stale ``done`` is removed first), ready once it writes ``done``, and stopped when the plan ends.
    """

    stage: str
    args: tuple[str, ...]
    done: str
    background: bool = False

    def __post_init__(self):
        if self.stage not in stages.names():
            raise CopycatError(f"unknown stage {self.stage!r} in a plan; known: {', '.join(stages.names())}")

    def flag(self, name: str) -> str | None:
        """The value of ``--name`` in this call (the last one given), or None."""
        values = [a.split("=", 1)[1] for a in self.args if a.startswith(f"--{name}=")]
        return values[-1] if values else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", stages.get(self.stage).binary, *self.args]


def join(folder: str, *parts: str) -> str:
    """A path inside ``folder`` (local path or URL), without touching the filesystem."""
    return posixpath.join(str(folder), *parts)


def _exists(path: str) -> bool:
    from tfrecords_schema import fileio

    return fileio.exists(path)


def run_in_subprocess(call: StageCall, cwd: str | None = None) -> str:
    """Run one call as a process of its own; a failure stops with its stderr. Returns its last stdout line."""
    result = subprocess.run(call.command(), capture_output=True, text=True, cwd=cwd,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise CopycatError(f"step {call.stage} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return (result.stdout.strip().splitlines()[-1:] or [""])[0]


def execute(calls: Iterable[StageCall], prefix: str = "copycat",
            run: Callable[[StageCall], str] = run_in_subprocess, exists: Callable[[str], bool] = _exists,
            start: Callable[[StageCall], Callable[[], None]] | None = None) -> list[StageCall]:
    """Run every call whose ``done`` marker is missing, in order; returns the calls that ran. Background calls
    are started with ``start`` (default: a process of its own) and all stopped when the plan ends."""
    ran, stops = [], []
    restore = _exit_on_sigterm()
    try:
        for call in calls:
            what = f"{call.stage} -> {os.path.basename(os.path.dirname(call.done.rstrip('/')))}"
            if call.background:
                started = time.time()
                stops.append((start or start_in_background)(call))
                print(f"[{prefix}] {what} started in the background ({time.time() - started:.0f} s)", flush=True)
                ran.append(call)
                continue
            if exists(call.done):
                print(f"[{prefix}] {what}: already done", flush=True)
                continue
            started = time.time()
            print(f"[{prefix}] {what} ...", flush=True)
            last = run(call)
            print(f"[{prefix}] {what} done in {time.time() - started:.0f} s: {last}", flush=True)
            ran.append(call)
    finally:
        for stop in reversed(stops):
            stop()
        restore()
    return ran


def _exit_on_sigterm() -> Callable[[], None]:
    """While a plan runs, SIGTERM ends it as an exception does: the running step's process is killed and the
    background steps are stopped, instead of being left running without their plan. Returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    return lambda: signal.signal(signal.SIGTERM, previous)


def start_in_background(call: StageCall, timeout_s: float = 300.0) -> Callable[[], None]:
    """Start a background call as a process of its own and wait until it writes its ``done`` file (local);
    returns the function that stops it (SIGINT, then SIGKILL after 30 s). A process that ends before it is
    ready stops the plan with its stderr."""
    import signal
    import tempfile

    if "://" in call.done:
        raise CopycatError(f"a background step ({call.stage}) must announce itself in a local file, not {call.done}")
    if os.path.exists(call.done):
        os.remove(call.done)
    errors = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(call.command(), stdout=subprocess.DEVNULL, stderr=errors,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("background step %s did not stop within 30 s of SIGINT; killed", call.stage)
                process.kill()
                process.wait()
        errors.close()

    deadline = time.time() + timeout_s
    try:
        while not os.path.exists(call.done):
            if process.poll() is not None or time.time() > deadline:
                reason = f"exit {process.returncode}" if process.returncode is not None else f"not ready in {timeout_s:.0f} s"
                errors.seek(0)
                raise CopycatError(f"background step {call.stage} failed ({reason}):\n{errors.read()[-3000:]}")
            time.sleep(0.2)
    except BaseException:  # a failure, or Ctrl-C while waiting: the process must not outlive the plan
        stop()
        raise
    return stop


def unique(calls: Sequence[StageCall]) -> list[StageCall]:
    """The calls in order, each output once. Plans share steps (the target's training); two *different* calls
    that would write the same output are refused: one run name must always mean one run."""
    seen: dict[str, StageCall] = {}
    kept = []
    for call in calls:
        if call.done in seen:
            if seen[call.done] != call:
                raise CopycatError(f"the plan writes {call.done} twice with different options: "
                                   f"{' '.join(seen[call.done].args)} vs {' '.join(call.args)}")
            continue
        seen[call.done] = call
        kept.append(call)
    return kept
