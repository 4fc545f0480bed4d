"""A progress line every few seconds for long per-element work: how many, how fast, how long still.

Beam's counters show progress on Dataflow's console; a local run has only its log, so the DoFns that
do the heavy per-image work also log this line (from each worker that runs them).
"""

import logging
import time

log = logging.getLogger("copycat.progress")


class Progress:
    """Counts steps; every ``every`` seconds logs ``WHAT N [of TOTAL] images, R images/s[, about S s left]``."""

    def __init__(self, what: str, expected: int = 0, every: float = 5.0, clock=time.monotonic):
        self._what = what
        self._expected = expected
        self._every = every
        self._clock = clock
        self._start = self._last = clock()
        self.count = 0
        self.lines: list[str] = []  # what was logged, for callers and tests

    def step(self, n: int = 1) -> None:
        self.count += n
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._log(now)

    def finish(self) -> None:
        """One last line when the work took long enough to have shown any."""
        if self.lines:
            self._log(self._clock())

    def _log(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        line = f"{self._what} {self.count}"
        if self._expected:
            line += f" of {self._expected}"
        line += f" images, {rate:.0f} images/s"
        if self._expected and rate > 0 and self.count < self._expected:
            line += f", about {(self._expected - self.count) / rate:.0f} s left"
        self.lines.append(line)
        log.info(line)
