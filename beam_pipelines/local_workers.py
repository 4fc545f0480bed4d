"""Every core of one machine for a stage's per-image work, with the results in input order.

Beam's in-process runner runs a stage's DoFns on one core, and its multi-process mode pays each
worker's imports and moves every image's bytes over gRPC (measured: slower than one process at
4,000 images). Threads do not help either: decoding releases the GIL, but the Python around it
does not (measured: 1.14x on 2 cores). So a local run hands the pure per-image function (bytes in,
small picklable result out) to a pool of plain worker processes.

On Linux the workers are forked: they start at once, import nothing, and never re-run the caller's
``__main__`` (a script without an ``if __name__ == "__main__"`` guard works). They run only Pillow,
NumPy and hashlib code, never TensorFlow or Beam, whose threads and locks a fork does not carry over
safely. Elsewhere (macOS, Windows) they are spawned, which needs that guard in a calling script.

Results come back in the order the inputs were given, so a run with N workers emits exactly what
the one-process run emits, in the same order.
"""

import collections
import concurrent.futures
import multiprocessing
import os
import sys
from typing import Any, Callable, Iterator, Sequence

from beam_pipelines.runner import DIRECT

AUTO = 0


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def in_process(runner: str, pipeline_args: Sequence[str] = ()) -> bool:
    """Whether Beam runs every stage in this one process (the default DirectRunner)."""
    return runner == DIRECT and not any(a.startswith("--direct_num_workers") for a in pipeline_args)


def worker_count(requested: int, runner: str, pipeline_args: Sequence[str] = ()) -> int:
    """How many worker processes a stage's per-image work gets.

    ``requested`` 0 means every core, but only where Beam runs the stage in this one process (the
    default DirectRunner): on Dataflow, Flink or Spark, and in Beam's own multi-process mode, the
    runner already spreads the work, so the function runs inline (1).
    """
    if requested < 0:
        raise ValueError(f"worker count must be >= 0, got {requested}")
    if not in_process(runner, pipeline_args):
        return 1
    return available_cores() if requested == AUTO else requested


def _start_method() -> str:
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _apply_all(function: Callable, calls: list[tuple]) -> list:
    return [function(*args) for args in calls]


class OrderedPool:
    """``function`` over a stream of calls on ``workers`` processes; results in input order.

    Inputs are sent in chunks (fewer round trips); at most ``window`` chunks, and about ``max_bytes``
    of the sizes the caller declares (at most one chunk more), are in flight, so memory stays bounded
    however long the stream is and however large its items. ``function`` and its inputs and results must be
    picklable, and ``function`` must be importable without the caller's ``__main__`` state.
    """

    def __init__(self, function: Callable, workers: int, chunk: int = 8, window: int = 0,
                 max_bytes: int = 512 * 2**20):
        self._function = function
        self._chunk = chunk
        self._window = window or 4 * workers
        self._max_bytes = max_bytes
        self._chunk_bytes = max(1, max_bytes // (2 * workers))  # large items: smaller chunks, still every worker busy
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(_start_method())
        )
        self._buffer: list = []
        self._buffer_bytes = 0
        self._pending: collections.deque = collections.deque()  # (keys, future, bytes)
        self._pending_bytes = 0

    def put(self, key: Any, args: tuple, size: int = 0) -> Iterator[tuple[Any, Any]]:
        """Queue the call ``function(*args)`` (``key`` stays here, unpickled, and comes back with its
        result; ``size``: the bytes it holds, for the memory bound); yield the (key, result) pairs
        that are done, in input order."""
        self._buffer.append((key, args))
        self._buffer_bytes += size
        if len(self._buffer) >= self._chunk or self._buffer_bytes >= self._chunk_bytes:
            self._send()
        yield from self._within_bounds()

    def put_done(self, key: Any, result: Any) -> Iterator[tuple[Any, Any]]:
        """Queue a result known without any work, in its place in the input order."""
        if self._buffer:
            self._send()
        done: concurrent.futures.Future = concurrent.futures.Future()
        done.set_result([result])
        self._pending.append(([key], done, 0))
        yield from self._within_bounds()

    def drain(self) -> Iterator[tuple[Any, Any]]:
        """Everything still queued or in flight, in order."""
        if self._buffer:
            self._send()
        while self._pending:
            yield from self._receive()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def in_flight_bytes(self) -> int:
        return self._pending_bytes + self._buffer_bytes

    def _within_bounds(self) -> Iterator[tuple[Any, Any]]:
        while self._pending and (len(self._pending) > self._window or self.in_flight_bytes() > self._max_bytes):
            yield from self._receive()

    def _send(self) -> None:
        keys = [key for key, _ in self._buffer]
        future = self._executor.submit(_apply_all, self._function, [args for _, args in self._buffer])
        self._pending.append((keys, future, self._buffer_bytes))
        self._pending_bytes += self._buffer_bytes
        self._buffer, self._buffer_bytes = [], 0

    def _receive(self) -> Iterator[tuple[Any, Any]]:
        keys, future, size = self._pending[0]
        results = future.result()  # a failed chunk stays queued: nothing is dropped silently
        self._pending.popleft()
        self._pending_bytes -= size
        yield from zip(keys, results)
