"""Experiments as plans: a list of stage calls, built without running anything, and one executor for them.

A :class:`StageCall` names a stage binary, its arguments and the file that marks it finished. Plans
(``copycat_tf.experiment.plan``) are pure functions of a config and an output folder, so they are
tested by comparing call lists, in milliseconds. :func:`execute` runs the calls in order, each in a
process of its own, forked from one process that imported TensorFlow and Beam once (or through any other
``run`` function, as tests do), skipping those whose marker
exists, through the lake's file layer so ``gs://`` outputs work like local ones. The stages a plan may
call are those of the registry, ``copycat_tf.stages``.
"""

import dataclasses
import logging
import os
import posixpath
import shutil
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

    def paths(self) -> list[str]:
        """Every path the call names: its flags' values that hold a '/' (comma lists split), and ``done``."""
        found = [self.done.rstrip("/")]
        for arg in self.args:
            if arg.startswith("--") and "=" in arg:
                found += [v.rstrip("/") for v in arg.split("=", 1)[1].split(",") if "/" in v]
        return found

    def writes(self, reads: Iterable[str] = ()) -> list[str]:
        """The paths the call writes: the values of its stage's writing flags (``--output``, a shared ledger...),
        but for the shared folders it only ``reads`` (:func:`shared_reads`)."""
        flags = [name for name in stages.get(self.stage).writes if name not in reads]
        return [self.done.rstrip("/"), *(v.rstrip("/") for name in flags if (v := self.flag(name)))]


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def must_follow(later: StageCall, earlier: StageCall, later_reads: Iterable[str] = (),
                earlier_reads: Iterable[str] = ()) -> bool:
    """Whether ``later`` may only start once ``earlier`` has finished: it names something ``earlier`` writes
    (the same path, one inside it or around it), or it writes something ``earlier`` names, or its stage reads
    more than its flags name (``Stage.after_all``: the report reads whatever the plan wrote). A shared folder
    that a call only reads (``*_reads``, from :func:`shared_reads`) is not among what it writes."""
    if stages.get(later.stage).after_all:
        return True
    return (any(_nested(p, w) for p in later.paths() for w in earlier.writes(earlier_reads))
            or any(_nested(w, p) for w in later.writes(later_reads) for p in earlier.paths()))


def shared_reads(calls: Sequence[StageCall]) -> list[frozenset[str]]:
    """For each call, the shared flags (``Stage.shares``) whose folders it only reads: an earlier call in ``calls``
    built each of them from the same inputs (e.g. the transformed pool of one recipe's steals over seeds). Those
    calls wait for the builder and not for each other. A call that would build any of its shared folders (first
    of its inputs, or other inputs than the last build) builds them all: it waits for every earlier call that
    names them, and the calls after it read its build."""
    built: dict[tuple[str, str], tuple] = {}  # (flag, folder) -> the inputs of its last build
    reads = []
    for call in calls:
        keys = {(flag, path.rstrip("/")): tuple(call.flag(name) for name in inputs)
                for flag, inputs in stages.get(call.stage).shares if (path := call.flag(flag)) is not None}
        if keys and all(built.get(folder) == inputs for folder, inputs in keys.items()):
            reads.append(frozenset(flag for flag, _ in keys))
        else:
            built.update(keys)
            reads.append(frozenset())
    return reads


def join(folder: str, *parts: str) -> str:
    """A path inside ``folder`` (local path or URL), without touching the filesystem."""
    return posixpath.join(str(folder), *parts)


def _exists(path: str) -> bool:
    from tfrecords_schema import fileio

    return fileio.exists(path)


class Running:
    """The step processes of a parallel plan: once :meth:`stop_all` ran, a process added later is killed at once
    (a step handed to a worker just as the plan stopped must not start its work)."""

    def __init__(self):
        import threading

        self._lock, self._processes, self._stopped = threading.Lock(), set(), False

    def add(self, process) -> None:
        with self._lock:
            self._processes.add(process)
            if self._stopped:
                process.kill()

    def discard(self, process) -> None:
        with self._lock:
            self._processes.discard(process)

    def stop_all(self) -> None:
        with self._lock:
            self._stopped = True
            for process in self._processes:
                process.kill()


def step_environment(running: Running | None) -> dict:
    """The environment of a step process: the plan's own, quiet TensorFlow logs, and where steps run at once
    (``running``) GPU memory taken as needed instead of all at once, since they share the GPU."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if running is not None:
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


def step_outcome(call: StageCall, exit_code: int, stdout: str, stderr: str) -> str:
    """A finished step's last stdout line; a failure stops the plan with the end of its stderr."""
    if exit_code != 0:
        raise CopycatError(f"step {call.stage} failed (exit {exit_code}):\n{stderr[-3000:]}")
    return (stdout.strip().splitlines()[-1:] or [""])[0]


def run_in_subprocess(call: StageCall, cwd: str | None = None, running: Running | None = None) -> str:
    """Run one call as a process of its own; a failure stops with its stderr. Returns its last stdout line.
    The process is in ``running`` while it runs, so a parallel plan can stop it when the plan ends; steps that
    share the machine also share its GPU, so each takes GPU memory as it needs it instead of all at once."""
    with subprocess.Popen(call.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                          env=step_environment(running)) as process:
        if running is not None:
            running.add(process)
        try:
            stdout, stderr = process.communicate()
        except BaseException:  # Ctrl-C or SIGTERM of the plan: the step must not outlive it
            process.kill()
            raise
        finally:
            if running is not None:
                running.discard(process)
    return step_outcome(call, process.returncode, stdout, stderr)


def run_step(call: StageCall, cwd: str | None = None, running: Running | None = None) -> str:
    """Run one call in a process of its own: a child of the warm server that imported TensorFlow and Beam once
    (``copycat_tf.forked_steps``) where the platform allows, else a fresh ``python -m`` process. Both compute the
    same numbers; forking saves each step the seconds of those imports."""
    from copycat_tf import forked_steps

    if forked_steps.available():
        return forked_steps.run_forked(call, cwd=cwd, running=running)
    return run_in_subprocess(call, cwd=cwd, running=running)


def _what(call: StageCall) -> str:
    return f"{call.stage} -> {os.path.basename(os.path.dirname(call.done.rstrip('/')))}"


def execute(calls: Iterable[StageCall], prefix: str = "copycat",
            run: Callable[[StageCall], str] = run_step, exists: Callable[[str], bool] = _exists,
            start: Callable[[StageCall], Callable[[], None]] | None = None, jobs: int = 1) -> list[StageCall]:
    """Run every call whose ``done`` marker is missing; returns the calls that ran, in the order they started.
    Background calls are started with ``start`` (default: a process of its own) and all stopped when the plan
    ends. With ``jobs`` > 1, up to that many calls run at once: a call starts, in plan order, once every
    earlier call it must follow (:func:`must_follow`) has finished; a background call waits for everything
    before it, and everything after it waits for it. Each step computes what it computes alone."""
    ran, stops = [], []
    restore = _exit_on_sigterm()
    try:
        batch: list[StageCall] = []  # the calls between two background calls
        for call in [*calls, None]:
            if call is not None and not call.background:
                batch.append(call)
                continue
            ran += _run_batch(batch, prefix, run, exists, jobs)
            batch = []
            if call is not None:
                started = time.time()
                stops.append((start or start_in_background)(call))
                print(f"[{prefix}] {_what(call)} started in the background ({time.time() - started:.0f} s)", flush=True)
                ran.append(call)
    finally:
        for stop in reversed(stops):
            stop()
        restore()
    return ran


def _run_one(call: StageCall, prefix: str, run: Callable[[StageCall], str]) -> StageCall:
    started = time.time()
    print(f"[{prefix}] {_what(call)} ...", flush=True)
    last = run(call)
    print(f"[{prefix}] {_what(call)} done in {time.time() - started:.0f} s: {last}", flush=True)
    return call


def _run_batch(calls: list[StageCall], prefix: str, run: Callable[[StageCall], str], exists: Callable[[str], bool],
               jobs: int) -> list[StageCall]:
    todo = []
    for call in calls:
        if exists(call.done):
            print(f"[{prefix}] {_what(call)}: already done", flush=True)
        else:
            todo.append(call)
    if jobs <= 1 or len(todo) <= 1:
        return [_run_one(call, prefix, run) for call in todo]
    import concurrent.futures
    import functools

    running = Running()
    if run in (run_step, run_in_subprocess):
        run = functools.partial(run, running=running)
    reads = shared_reads(todo)  # over the calls left: the builder may have finished in an earlier run
    after = {i: {j for j in range(i) if must_follow(todo[i], todo[j], reads[i], reads[j])} for i in range(len(todo))}
    waiting, finished, ran = list(range(len(todo))), set(), []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="plan-step")
    active: dict = {}
    try:
        while waiting or active:
            for i in [i for i in waiting if after[i] <= finished][:jobs - len(active)]:
                waiting.remove(i)
                active[pool.submit(_run_one, todo[i], prefix, run)] = i
                ran.append(todo[i])
            done, _ = concurrent.futures.wait(active, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                finished.add(active.pop(future))
                future.result()  # a failed step stops the plan (the others still running are stopped below)
    finally:
        running.stop_all()  # a failure, Ctrl-C or SIGTERM: no step outlives its plan
        pool.shutdown(wait=True, cancel_futures=True)
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
    ready stops the plan with its stderr. Like foreground steps, it is forked from the warm server where the
    platform allows (:func:`run_step`), else started as a fresh ``python -m`` process."""
    import signal
    import tempfile

    from copycat_tf import forked_steps
    from tfrecords_schema import fileio

    if fileio.is_remote(call.done):
        raise CopycatError(f"a background step ({call.stage}) must announce itself in a local file, not {call.done}")
    if os.path.exists(call.done):
        os.remove(call.done)
    folder = tempfile.mkdtemp(prefix="copycat-background-")
    errors = os.path.join(folder, "stderr")
    if forked_steps.available():
        stage = stages.get(call.stage)
        process = forked_steps.PopenLike(forked_steps.start(stage.binary, call.args, step_environment(None), os.devnull, errors,
                                             imports=stage.imports, name=f"copycat-{call.stage}"))
    else:
        with open(errors, "w") as handle:
            process = subprocess.Popen(call.command(), stdout=subprocess.DEVNULL, stderr=handle,
                                       env=step_environment(None))

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("background step %s did not stop within 30 s of SIGINT; killed", call.stage)
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)

    deadline = time.time() + timeout_s
    try:
        while not os.path.exists(call.done):
            if process.poll() is not None or time.time() > deadline:
                code = process.poll()
                reason = f"exit {code}" if code is not None else f"not ready in {timeout_s:.0f} s"
                with open(errors, errors="replace") as handle:
                    raise CopycatError(f"background step {call.stage} failed ({reason}):\n{handle.read()[-3000:]}")
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
