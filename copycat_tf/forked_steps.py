"""Plan steps forked from one warm process, so TensorFlow and Beam are imported once per plan, not once per step.

A plan of the demo's size runs about forty steps, and each fresh ``python -m copycat_bin.STAGE`` spends seconds
importing TensorFlow and Beam before it does any work. Python's ``forkserver`` start method keeps one server
process that has imported those modules and done nothing else: no TensorFlow runtime, no device, no graph. Each
step is a child forked from it that runs the stage's binary exactly as ``python -m`` would (its flags, its
``__main__``, its exit code, its stdout and stderr), so a step computes what it computes in a process of its own.

The server is started by the first forked step of a process and lives as long as that process. It imports what
that step's stage lists (``Stage.imports``); its preloaded modules are fixed from then on. Steps are forked on Linux;
with ``COPYCAT_FORK_STEPS=0``, on other systems unless ``COPYCAT_FORK_STEPS=1``, and where ``forkserver`` is missing
(Windows), the plan runs each step as a fresh process instead (``copycat_tf.plan.run_in_subprocess``).
"""

import atexit
import contextlib
import faulthandler
import gc
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import types

_START = threading.Lock()


def available() -> bool:
    """Whether steps are forked here: on Linux unless ``COPYCAT_FORK_STEPS=0``; elsewhere only with
    ``COPYCAT_FORK_STEPS=1`` (macOS frameworks may refuse to run in a child forked after they were loaded), and
    never where the platform has no ``forkserver``."""
    wanted = os.environ.get("COPYCAT_FORK_STEPS", "1" if sys.platform.startswith("linux") else "0") != "0"
    return wanted and "forkserver" in multiprocessing.get_all_start_methods()


def _context(preload):
    """The forkserver context, its server started with ``preload`` and the quiet TensorFlow log level of steps."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    with _START:
        context.set_forkserver_preload(list(preload))
        previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # the server imports TensorFlow: its C++ log level is read then
        try:
            forkserver.ensure_running()
        finally:
            if previous is None:
                os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            else:
                os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous
        global _REAPED
        if not _REAPED:
            atexit.register(_stop_server)
            _REAPED = True
    return context


_REAPED = False  # whether this process stops and waits for the server at exit


def _stop_server() -> None:
    """At exit, stop the server and wait for it. The server waits for every step it forked, so their CPU time is
    counted as this process's children's (``time copycat-demo`` then shows the steps' work, not only the plan's)."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # CPython's own, used by its tests; absent: nothing to do
    if stop is not None:
        try:
            stop()
        except OSError:
            pass


@contextlib.contextmanager
def _no_main():
    """While a step is started, the plan's own ``__main__`` is an empty module. Otherwise the child imports the
    plan's main script again before the step runs (multiprocessing's preparation of a child), and with it the
    flags of ``copycat-demo`` or ``copycat-experiment``, which then clash with the step binary's own flags."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _step(binary: str, args: list[str], cwd: str | None, env: dict, stdout: str, stderr: str) -> None:
    """In the forked child: the stage's binary as ``python -m BINARY ARGS`` runs it, output into two files (one
    file where both paths are the same, as ``stderr=STDOUT`` would give)."""
    sys.stdout.flush(), sys.stderr.flush()
    opened = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(opened, 1)
    if stderr != stdout:
        os.close(opened)
        opened = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(opened, 2)
    os.close(opened)
    faulthandler.enable()  # a crash (SIGSEGV, SIGABRT) leaves the step's Python stack in its stderr, as with -X faulthandler
    # The modules the server imported are the step's for good: its garbage collector leaves them out, instead of
    # walking them at every full collection (and copying the server's memory pages it would touch).
    gc.freeze()
    os.environ.clear()  # the plan's environment now, not the server's when it started
    os.environ.update(env)
    tempfile.tempdir = None  # the temporary folder follows this TMPDIR, as in a fresh process (not a cached one)
    if cwd:
        os.chdir(cwd)
    sys.path.insert(0, os.getcwd())  # as ``python -m`` puts the working folder first
    sys.argv = [binary, *args]
    try:
        runpy.run_module(binary, run_name="__main__", alter_sys=True)
    finally:
        atexit._run_exitfuncs()  # a forked child ends with os._exit: run what the binary registered, as at exit
        sys.stdout.flush(), sys.stderr.flush()


def server(imports=None):
    """The multiprocessing context whose children are forked from the warm server, started now if it is not
    running (with ``imports``, by default the heavy modules of every stage). Other process pools can use it too:
    their children then skip those imports as well."""
    if imports is None:
        from copycat_tf.stages import HEAVY_IMPORTS as imports
    return _context(imports)


def start(binary: str, args: list[str], env: dict, stdout: str, stderr: str, cwd: str | None = None,
          imports=None, name: str | None = None):
    """Start ``python -m BINARY ARGS`` as a child of the warm server (which imported ``imports``, by default the
    heavy modules of every stage) with this environment, its stdout and stderr going to those files. Returns the
    started ``multiprocessing.Process``: its ``pid``, ``join``, ``kill`` and ``exitcode`` (negative: the signal)."""
    context = server(imports)
    process = context.Process(target=_step, args=(binary, list(args), cwd, env, stdout, stderr),
                              name=name or binary)
    with _START, _no_main():
        process.start()
    return process


class PopenLike:
    """A started step seen through the parts of ``subprocess.Popen`` its callers use (``pid``, ``returncode``,
    ``poll``, ``wait``, ``send_signal``, ``kill``), so code that may start a fresh process or a forked one treats
    both alike."""

    def __init__(self, process, args=None):
        self._process, self.pid, self.returncode = process, process.pid, None
        self.args = args or [process.name]

    def poll(self) -> int | None:
        if self.returncode is None and not self._process.is_alive():
            self._process.join()
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            self._process.kill()


def run_forked(call, cwd: str | None = None, running=None) -> str:
    """Run one call as a child of the warm server; a failure stops with its stderr. Returns its last stdout line.
    The child is in ``running`` while it runs, so a parallel plan can stop it when the plan ends; steps that
    share the machine also share its GPU, so each takes GPU memory as it needs it instead of all at once."""
    from copycat_tf import stages
    from copycat_tf.plan import step_environment, step_outcome

    stage = stages.get(call.stage)
    env = step_environment(running)  # the plan's environment now, as a fresh process gets it (API keys set since)
    with tempfile.TemporaryDirectory(prefix="copycat-step-") as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        process = start(stage.binary, call.args, env, out, err, cwd=cwd, imports=stage.imports,
                        name=f"copycat-{call.stage}")
        if running is not None:
            running.add(process)
        try:
            process.join()
        except BaseException:  # Ctrl-C or SIGTERM of the plan: the step must not outlive it
            process.kill()
            process.join()
            raise
        finally:
            if running is not None:
                running.discard(process)
        stdout, stderr = (open(path, errors="replace").read() if os.path.exists(path) else "" for path in (out, err))
    return step_outcome(call, process.exitcode, stdout, stderr)
