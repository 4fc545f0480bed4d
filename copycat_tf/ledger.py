"""The query ledger: what the oracle has answered and what has been spent, surviving any crash.

Layout (``LEDGER`` defaults to ``OUTPUT/ledger``; one subfolder per oracle fingerprint, so answers
of one model are never reused for another):

    LEDGER/<oracle key>/oracle.json           the fingerprint and description of the oracle
    LEDGER/<oracle key>/spend/<batch>.json    written and flushed BEFORE a batch is sent: its ids
    LEDGER/<oracle key>/answers/<batch>.jsonl written and flushed AFTER the oracle answered: id, label
    LEDGER/<oracle key>/spend.total           local ledgers: running total, updated under a file lock

Never pay twice: a rerun reads every answer first and sends only images without one. A crash
(even ``kill -9``) loses at most the batches in flight: their spend is recorded, their answers are
not, and the rerun asks for them again. Every file is written whole (temporary name, then rename;
object stores write whole objects), so a torn file never exists.

The budget (``max_queries``) counts queries when a batch is sent. On a local path the reservation
is exact across threads and processes (``fcntl`` lock on ``spend.total``). On a shared object store
(``gs://``, Dataflow), where no lock exists, the pipeline only hands the oracle as many images as the
budget has left, and each worker process also refuses to exceed it; a bundle that the runner retries
after a worker crash can re-send its batch once more (the in-flight bound).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import threading
import uuid
from typing import Iterable, Sequence

from tfrecords_schema import fileio


def oracle_key(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def _is_local(path: str) -> bool:
    return "://" not in str(path)


@contextlib.contextmanager
def _file_lock(path: str):
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_durably(path: str, text: str) -> None:
    """Whole-file write: temporary name, flush to disk, rename."""
    if _is_local(path):
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    else:
        fileio.write_text_atomically(path, text)


@dataclasses.dataclass
class LedgerState:
    """What a ledger holds when a run starts."""

    answers: dict[str, int]
    spent: int


class Ledger:
    """One oracle's ledger; safe to share between threads, and between processes on a local path."""

    def __init__(self, root: str, fingerprint: str, description: dict | None = None):
        self.fingerprint = fingerprint
        self.folder = fileio.join(root, oracle_key(fingerprint))
        self._local = _is_local(self.folder)
        self._lock = threading.Lock()
        self._process_spent = 0
        fileio.makedirs(fileio.join(self.folder, "spend"))
        fileio.makedirs(fileio.join(self.folder, "answers"))
        info = fileio.join(self.folder, "oracle.json")
        if not fileio.exists(info):
            _write_durably(info, json.dumps({"fingerprint": fingerprint, "oracle": description or {}}, indent=2))

    @property
    def answers_glob(self) -> str:
        return fileio.join(self.folder, "answers", "*.jsonl")

    # -- reading --------------------------------------------------------------------------------

    def spent(self) -> int:
        """Queries recorded as sent, over every run (the sum of the spend records)."""
        total = 0
        for path in fileio.glob(fileio.join(self.folder, "spend", "*.json")):
            total += json.loads(fileio.read_text(path))["count"]
        return total

    def spent_by_run(self, run_id: str) -> int:
        total = 0
        for path in fileio.glob(fileio.join(self.folder, "spend", f"{run_id}-*.json")):
            total += json.loads(fileio.read_text(path))["count"]
        return total

    def read_answers(self) -> dict[str, int]:
        """Every answered id and its class (small ledgers; pipelines read the answer files in Beam)."""
        answers = {}
        for path in fileio.glob(self.answers_glob):
            for line in fileio.read_text(path).splitlines():
                if line.strip():
                    row = json.loads(line)
                    answers[row["id"]] = row["label"]
        return answers

    def pending_ids(self) -> list[str]:
        """Ids sent (spend recorded) whose answer never came: the batches in flight when a run died."""
        answered = self.read_answers()
        pending = []
        for path in sorted(fileio.glob(fileio.join(self.folder, "spend", "*.json"))):
            pending += [i for i in json.loads(fileio.read_text(path)).get("ids", []) if i not in answered]
        return list(dict.fromkeys(pending))

    def reconcile(self) -> int:
        """Make the local running total equal the spend records (run once before a job starts)."""
        spent = self.spent()
        if self._local:
            with _file_lock(os.path.join(self.folder, ".lock")):
                _write_durably(os.path.join(self.folder, "spend.total"), str(spent))
        return spent

    # -- writing, per batch ---------------------------------------------------------------------

    def reserve(self, run_id: str, ids: Sequence[str], max_queries: int | None, process_budget: int | None) -> list[str]:
        """Record the batch as spent before it is sent; returns the ids the budget allows (a prefix)."""
        with self._lock:
            allowed = len(ids)
            if process_budget is not None:
                allowed = min(allowed, max(0, process_budget - self._process_spent))
            if self._local and max_queries is not None:
                with _file_lock(os.path.join(self.folder, ".lock")):
                    total_path = os.path.join(self.folder, "spend.total")
                    total = int(open(total_path).read() or 0) if os.path.exists(total_path) else 0
                    allowed = min(allowed, max(0, max_queries - total))
                    if allowed:
                        _write_durably(total_path, str(total + allowed))  # first the total: never over
                        self._write_spend(run_id, ids[:allowed])
            elif allowed:
                self._write_spend(run_id, ids[:allowed])
            self._process_spent += allowed
            return list(ids[:allowed])

    def _write_spend(self, run_id: str, ids: Sequence[str]) -> None:
        path = fileio.join(self.folder, "spend", f"{run_id}-{uuid.uuid4().hex}.json")
        _write_durably(path, json.dumps({"run": run_id, "count": len(ids), "ids": list(ids)}))

    def record(self, ids: Sequence[str], labels: Iterable[int]) -> None:
        """Durably record the oracle's answers for a batch (before the next batch goes out)."""
        lines = "".join(json.dumps({"id": i, "label": int(label)}) + "\n" for i, label in zip(ids, labels))
        _write_durably(fileio.join(self.folder, "answers", f"{uuid.uuid4().hex}.jsonl"), lines)
