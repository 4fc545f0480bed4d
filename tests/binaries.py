"""Run a copycat binary in a test as the plan executor runs a step: forked from a warm server that imported
TensorFlow, Keras and Beam once per test process (``copycat_tf.forked_steps``).

A fresh ``python -m copycat_bin.X`` spends about 4 s of CPU importing TensorFlow before any work, and the default
test run starts about twenty of them. The tests that check a binary's *work* (kill and resume, clusters, exit codes
of a run) use this; the tests that check what a binary does *before* its heavy imports (a bad flag refused in a
fraction of a second, ``tests/bin``) still start fresh processes. Both are how users run the binaries: a fresh
process from the shell, a forked one from ``copycat-experiment`` and ``copycat-demo``.
"""

import os
import shutil
import subprocess
import tempfile
import time

from copycat_tf import forked_steps

STDOUT = subprocess.STDOUT


class Forked(forked_steps.PopenLike):
    """A binary running forked, with the parts of ``subprocess.Popen``'s interface the tests use; its output is
    text, read when it ends."""

    def __init__(self, binary: str, args, env: dict | None = None, cwd=None, stderr=None):
        self._folder = tempfile.mkdtemp(prefix="copycat-test-binary-")
        self._out = os.path.join(self._folder, "stdout")
        self._err = self._out if stderr == STDOUT else os.path.join(self._folder, "stderr")
        args = [binary, *map(str, args)]
        super().__init__(forked_steps.start(binary, args[1:], dict(os.environ if env is None else env), self._out,
                                            self._err, cwd=None if cwd is None else str(cwd)), args)

    def output(self) -> tuple[str, str]:
        """Its stdout and stderr so far (stderr empty when it went to stdout)."""
        def read(path):
            return open(path, errors="replace").read() if os.path.exists(path) else ""
        return read(self._out), "" if self._err == self._out else read(self._err)

    def communicate(self, timeout=None) -> tuple[str, str]:
        self.wait(timeout)
        try:
            return self.output()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        self._process.join()
        shutil.rmtree(self._folder, ignore_errors=True)


def run(binary: str, args, env: dict | None = None, cwd=None, timeout: float = 600,
        stderr=None) -> subprocess.CompletedProcess:
    """Run the binary to its end, as ``subprocess.run(..., capture_output=True, text=True)`` would."""
    with Forked(binary, args, env=env, cwd=cwd, stderr=stderr) as process:
        started = time.time()
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise subprocess.TimeoutExpired(process.args, time.time() - started) from None
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)
