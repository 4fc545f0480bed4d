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
    """One step of a plan: ``copycat-STAGE ARGS``, finished when ``done`` exists."""

    stage: str
    args: tuple[str, ...]
    done: str

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
            run: Callable[[StageCall], str] = run_in_subprocess, exists: Callable[[str], bool] = _exists) -> list[StageCall]:
    """Run every call whose ``done`` marker is missing, in order; returns the calls that ran."""
    ran = []
    for call in calls:
        what = f"{call.stage} -> {os.path.basename(os.path.dirname(call.done.rstrip('/')))}"
        if exists(call.done):
            print(f"[{prefix}] {what}: already done", flush=True)
            continue
        started = time.time()
        print(f"[{prefix}] {what} ...", flush=True)
        last = run(call)
        print(f"[{prefix}] {what} done in {time.time() - started:.0f} s: {last}", flush=True)
        ran.append(call)
    return ran


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
