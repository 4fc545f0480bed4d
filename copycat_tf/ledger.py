"""The query ledger: what the oracle has answered and what has been spent, surviving any crash.

Layout (``LEDGER`` defaults to ``OUTPUT/ledger``; one subfolder per oracle fingerprint, so answers
of one model are never reused for another):

    LEDGER/<oracle key>/oracle.json           the fingerprint and description of the oracle
    LEDGER/<oracle key>/spend/<batch>.json    written and flushed BEFORE a batch is sent: its ids
    LEDGER/<oracle key>/answers/<batch>.jsonl written and flushed AFTER the oracle answered: id, label
    LEDGER/<oracle key>/spend.total           local ledgers: running total, updated under a file lock
    LEDGER/<oracle key>/index.sqlite          local ledgers: who holds which id (rebuilt from the files)
    LEDGER/<oracle key>/holders/<holder>      local ledgers: one per process that reserves; locked while it lives
    LEDGER/<oracle key>/rejected/<batch>.jsonl answers taken out by ``repair`` (kept for the record)

Never pay twice: a rerun reads every answer first and sends only images without one. A crash
(even ``kill -9``) loses at most the batches in flight: their spend is recorded, their answers are
not, and the rerun asks for them again. Every file is written whole (temporary name, then rename;
object stores write whole objects), so a torn file never exists.

The budget (``max_queries``) counts images when they are sent, re-sends included: a client that
retries a failed request pays for it again through :func:`pay_for_resend` (the batch reserved last in
the same thread), and the retry is refused when it would pass the budget. On a local path everything
that reads or changes the budget runs under one ``fcntl`` lock (``.lock``): reservations, re-sends,
answers and ``reconcile``. Under that lock ``reserve`` also skips what another run already holds: an
id that has an answer, or that a run still alive (its holder file is locked) has in flight; an id
reserved by a run that died without an answer is free again (the rerun asks for it once more). So
two runs with the same seed on one ledger never pay for the same image twice.

On a shared object store (``gs://``, Dataflow), where no lock exists, the pipeline only hands the
oracle as many images as the budget has left, and each worker process also refuses to exceed it; a
bundle that the runner retries after a worker crash can re-send its batch once more (the in-flight
bound); concurrent runs are not detected.

Answers are checked before they are written (an integer class, ``>= 0``, below the class count when
the ledger knows it) and again when a run starts (``reconcile``, ``read_answers``): a ledger that holds
an invalid answer (e.g. written by an older copycat that did not check) is refused with a message
naming it. ``python -m copycat_tf.ledger repair LEDGER/<oracle key> [--num_classes=K]`` moves such
answers to ``rejected/``; their images count as in flight, so the next run asks (and pays) for them
again: that is the repair's stated price, never a silent one.
"""

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import sqlite3
import sys
import threading
import uuid
from typing import Iterable, Sequence

import numpy as np

from copycat_tf.errors import CopycatError
from tfrecords_schema import fileio

_SQL_CHUNK = 500  # ids per "IN (...)" query (SQLite's variable limit is 999 on old builds)


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


def _is_class(value, num_classes: int | None) -> bool:
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return integer and value >= 0 and (num_classes is None or value < num_classes)


@dataclasses.dataclass
class LedgerState:
    """What a ledger holds when a run starts."""

    answers: dict[str, int]
    spent: int


@dataclasses.dataclass
class _OpenBatch:
    """The batch this thread reserved last and has not recorded yet: what a re-send pays for."""

    ledger: "Ledger"
    run_id: str
    ids: list[str]
    max_queries: int | None
    process_budget: int | None


_OPEN_BATCH: contextvars.ContextVar[_OpenBatch | None] = contextvars.ContextVar("copycat_open_batch", default=None)


def open_batch_ids() -> list[str] | None:
    """Ids of the batch this thread reserved and has not recorded yet (for error messages)."""
    batch = _OPEN_BATCH.get()
    return list(batch.ids) if batch else None


def pay_for_resend(count: int) -> str | None:
    """Pay for sending the open batch (see :func:`open_batch_ids`) once more; ``None`` when allowed.

    Returns why not when the budget (``max_queries`` over every run, or this process's share) cannot
    pay for all ``count`` images: a partial re-send is never made. Without an open batch (an oracle
    used outside a ledger) there is nothing to pay and ``None`` is returned.
    """
    batch = _OPEN_BATCH.get()
    if batch is None:
        return None
    ids = batch.ids[:count] if count <= len(batch.ids) else batch.ids + batch.ids[: count - len(batch.ids)]
    return batch.ledger._pay_resend(batch.run_id, ids, batch.max_queries, batch.process_budget)


class Ledger:
    """One oracle's ledger; safe to share between threads, and between processes on a local path."""

    def __init__(self, root: str, fingerprint: str, description: dict | None = None):
        self.fingerprint = fingerprint
        self.folder = fileio.join(root, oracle_key(fingerprint))
        self._local = _is_local(self.folder)
        self._lock = threading.RLock()
        self._process_spent = 0
        count = (description or {}).get("num_classes")
        self.num_classes = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None
        self._holder: str | None = None
        self._holder_handle = None
        fileio.makedirs(fileio.join(self.folder, "spend"))
        fileio.makedirs(fileio.join(self.folder, "answers"))
        info = fileio.join(self.folder, "oracle.json")
        if not fileio.exists(info):
            _write_durably(info, json.dumps({"fingerprint": fingerprint, "oracle": description or {}}, indent=2))

    @classmethod
    def open_folder(cls, folder: str, num_classes: int | None = None) -> "Ledger":
        """The ledger of one oracle by its folder (``LEDGER/<oracle key>``), as error messages name it."""
        info = fileio.join(folder, "oracle.json")
        if not fileio.exists(info):
            raise CopycatError(f"{folder} is not a ledger folder (no oracle.json); name the LEDGER/<oracle key> folder")
        fingerprint = json.loads(fileio.read_text(info))["fingerprint"]
        root = os.path.dirname(str(folder).rstrip("/"))
        return cls(root, fingerprint, {"num_classes": num_classes})

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

    def _answer_rows(self):
        """(file, line, row or None, valid) for every answer line."""
        for path in sorted(fileio.glob(self.answers_glob)):
            for line in fileio.read_text(path).splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                valid = (isinstance(row, dict) and isinstance(row.get("id"), str)
                         and _is_class(row.get("label"), self.num_classes))
                yield path, line, row, valid

    def _refuse_invalid(self, invalid: list) -> None:
        path, line, _, _ = invalid[0]
        classes = f"[0, {self.num_classes})" if self.num_classes else "0 or more"
        raise CopycatError(
            f"the ledger {self.folder} holds {len(invalid)} answer(s) that are not a class id {classes} "
            f"(first: {line.strip()[:120]} in {os.path.basename(path)}); they were recorded without being checked. "
            f"Repair: python -m copycat_tf.ledger repair {self.folder}"
            + (f" --num_classes={self.num_classes}" if self.num_classes else "")
            + " (moves them to rejected/; their images are asked, and paid for, again on the next run), "
            "or pass the right --num_classes"
        )

    def read_answers(self) -> dict[str, int]:
        """Every answered id and its class (small ledgers; pipelines read the answer files in Beam).

        Refuses a ledger that holds an invalid answer (see :meth:`repair`).
        """
        answers, invalid = {}, []
        for row in self._answer_rows():
            if row[3]:
                answers[row[2]["id"]] = int(row[2]["label"])
            else:
                invalid.append(row)
        if invalid:
            self._refuse_invalid(invalid)
        return answers

    def pending_ids(self) -> list[str]:
        """Ids sent (spend recorded) whose answer never came: the batches in flight when a run died."""
        answered = self.read_answers()
        pending = []
        for path in sorted(fileio.glob(fileio.join(self.folder, "spend", "*.json"))):
            pending += [i for i in json.loads(fileio.read_text(path)).get("ids", []) if i not in answered]
        return list(dict.fromkeys(pending))

    def reconcile(self) -> int:
        """Make the running total equal the spend records and check every answer (run once before a job).

        On a local path this happens under the ledger's lock, so a reservation of a concurrent run is
        either counted or waits; the holder index is rebuilt from the files at the same time.
        Raises CopycatError when the ledger holds an invalid answer.
        """
        if not self._local:
            self.read_answers()
            return self.spent()
        with self._lock, _file_lock(self._path(".lock")):
            with contextlib.closing(self._connect()) as db:
                spent = self._rebuild_index(db)
            _write_durably(self._path("spend.total"), str(spent))
            self._forget_dead_holders()
        return spent

    # -- writing, per batch ---------------------------------------------------------------------

    def reserve(self, run_id: str, ids: Sequence[str], max_queries: int | None, process_budget: int | None) -> list[str]:
        """Record the batch as spent before it is sent; returns the ids to send: a prefix of ``ids``.

        The prefix ends where the budget ends, or (local ledgers) at the first id that is answered
        already or in flight in another live run: that image is never paid for twice, and the caller
        leaves the rest of the batch for a later batch or run. :meth:`claim` skips such ids instead.
        """
        return self._reserve(run_id, ids, max_queries, process_budget, prefix=True)

    def claim(self, run_id: str, ids: Sequence[str], max_queries: int | None, process_budget: int | None) -> list[str]:
        """Like :meth:`reserve`, but skips taken ids anywhere in the batch: returns a subsequence of ``ids``."""
        return self._reserve(run_id, ids, max_queries, process_budget, prefix=False)

    def _reserve(self, run_id, ids, max_queries, process_budget, prefix: bool) -> list[str]:
        ids = list(ids)
        with self._lock:
            allowed = len(ids)
            if process_budget is not None:
                allowed = min(allowed, max(0, process_budget - self._process_spent))
            if self._local:
                with _file_lock(self._path(".lock")), contextlib.closing(self._connect()) as db:
                    self._ensure_holder()
                    self._ensure_index(db)
                    taken = self._taken(db, run_id, ids)
                    if prefix:
                        cut = next((n for n, i in enumerate(ids) if i in taken), len(ids))
                        candidates = ids[:cut]
                    else:
                        candidates = [i for i in dict.fromkeys(ids) if i not in taken]
                    total = self._total()
                    if max_queries is not None:
                        allowed = min(allowed, max(0, max_queries - total))
                    send = candidates[:allowed]
                    if send:
                        _write_durably(self._path("spend.total"), str(total + len(send)))  # first the total: never over
                        self._write_spend(run_id, send)
                        self._hold(db, run_id, send)
            else:
                send = ids[:allowed]
                if send:
                    self._write_spend(run_id, send)
            self._process_spent += len(send)
        _OPEN_BATCH.set(_OpenBatch(self, run_id, send, max_queries, process_budget) if send else None)
        return send

    def _pay_resend(self, run_id: str, ids: list[str], max_queries: int | None, process_budget: int | None) -> str | None:
        """All-or-nothing reservation of a re-send of ``ids`` (already held by this run)."""
        with self._lock:
            if process_budget is not None and self._process_spent + len(ids) > process_budget:
                return f"this process's share of the budget ({process_budget}) has {process_budget - self._process_spent} left"
            if self._local:
                with _file_lock(self._path(".lock")):
                    total = self._total()
                    if max_queries is not None and total + len(ids) > max_queries:
                        return f"--max_queries={max_queries} has {max(0, max_queries - total)} left"
                    _write_durably(self._path("spend.total"), str(total + len(ids)))
                    self._write_spend(run_id, ids, resend=True)
            else:
                self._write_spend(run_id, ids, resend=True)
            self._process_spent += len(ids)
        return None

    def _write_spend(self, run_id: str, ids: Sequence[str], resend: bool = False) -> None:
        path = fileio.join(self.folder, "spend", f"{run_id}-{uuid.uuid4().hex}.json")
        record = {"run": run_id, "count": len(ids), "ids": list(ids)}
        if self._holder:
            record["holder"] = self._holder
        if resend:
            record["resend"] = True
        _write_durably(path, json.dumps(record))

    def record(self, ids: Sequence[str], labels: Iterable[int]) -> None:
        """Durably record the oracle's answers for a batch (before the next batch goes out).

        Refuses (CopycatError, nothing written) labels that are not class ids: oracle clients
        validate answers first (copycat_tf.oracles.base.class_ids); this is the last line of defence.
        """
        ids, labels = list(ids), list(labels)
        if len(ids) != len(labels):
            raise CopycatError(f"refusing to record {len(labels)} answers for {len(ids)} images in {self.folder}")
        bad = [(i, label) for i, label in zip(ids, labels) if not _is_class(label, self.num_classes)]
        if bad:
            raise CopycatError(f"refusing to record class {bad[0][1]!r} for image {bad[0][0]} in {self.folder}: "
                               "not a class id" + (f" in [0, {self.num_classes})" if self.num_classes else ""))
        lines = "".join(json.dumps({"id": i, "label": int(label)}) + "\n" for i, label in zip(ids, labels))
        answer_file = fileio.join(self.folder, "answers", f"{uuid.uuid4().hex}.jsonl")
        if not self._local:
            _write_durably(answer_file, lines)
        else:  # the answer file and the index change together, under the lock: no window where they disagree
            with self._lock, _file_lock(self._path(".lock")), contextlib.closing(self._connect()) as db:
                _write_durably(answer_file, lines)
                if self._ensure_index(db):  # a fresh index read the new answer file already
                    with db:
                        for start in range(0, len(ids), _SQL_CHUNK):
                            chunk = ids[start:start + _SQL_CHUNK]
                            db.executemany("INSERT OR IGNORE INTO claims(id, run, holder, answered) VALUES (?, '', '', 1)",
                                           [(i,) for i in chunk])
                            db.execute(f"UPDATE claims SET answered = 1 WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        batch = _OPEN_BATCH.get()
        if batch is not None and batch.ledger is self:
            _OPEN_BATCH.set(None)

    def repair(self) -> dict:
        """Move invalid answers to ``rejected/`` (their images become in flight: the next run pays for them again)."""
        moved, files = 0, 0
        with self._lock, contextlib.ExitStack() as stack:
            if self._local:
                stack.enter_context(_file_lock(self._path(".lock")))
            by_file: dict[str, list] = {}
            for row in self._answer_rows():
                by_file.setdefault(row[0], []).append(row)
            for path, rows in by_file.items():
                invalid = [line for _, line, _, valid in rows if not valid]
                if not invalid:
                    continue
                fileio.makedirs(fileio.join(self.folder, "rejected"))
                _write_durably(fileio.join(self.folder, "rejected", os.path.basename(path)), "\n".join(invalid) + "\n")
                kept = "".join(line + "\n" for _, line, _, valid in rows if valid)
                if kept:
                    _write_durably(path, kept)
                elif self._local:
                    os.remove(path)
                else:
                    import tensorflow as tf

                    tf.io.gfile.remove(path)
                moved += len(invalid)
                files += 1
            if self._local:
                with contextlib.closing(self._connect()) as db:
                    self._rebuild_index(db)
        return {"rejected_answers": moved, "files": files}

    # -- the holder index (local ledgers) -------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return os.path.join(self.folder, *parts)

    def _total(self) -> int:
        path = self._path("spend.total")
        if not os.path.exists(path):
            return 0
        text = open(path).read().strip()
        return int(text) if text else 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path("index.sqlite"), timeout=120)  # "with db:" = one transaction
        db.execute("CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, run TEXT NOT NULL, holder TEXT NOT NULL, "
                   "answered INTEGER NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        return db

    def _ensure_index(self, db) -> bool:
        """Build the index from the files when it was never built; True when it existed already."""
        if db.execute("SELECT value FROM meta WHERE key = 'built'").fetchone():
            return True
        self._rebuild_index(db)
        return False

    def _rebuild_index(self, db) -> int:
        """Index every spend record (latest holder wins) and answer; returns the spend total. Under the lock."""
        spend = []
        for path in fileio.glob(fileio.join(self.folder, "spend", "*.json")):
            record = json.loads(fileio.read_text(path))
            spend.append((os.path.getmtime(path), path, record))
        spend.sort(key=lambda item: (item[0], item[1]))
        invalid, answered = [], []
        for row in self._answer_rows():
            (answered if row[3] else invalid).append(row)
        if invalid:
            self._refuse_invalid(invalid)
        with db:  # all or nothing: a crash mid-way leaves the old index (or none), never half of one
            db.execute("DELETE FROM meta WHERE key = 'built'")
            db.execute("DELETE FROM claims")
            for _, _, record in spend:
                rows = [(i, record.get("run", ""), record.get("holder", "")) for i in record.get("ids", [])]
                db.executemany("INSERT INTO claims(id, run, holder, answered) VALUES (?, ?, ?, 0) "
                               "ON CONFLICT(id) DO UPDATE SET run = excluded.run, holder = excluded.holder", rows)
            db.executemany("INSERT INTO claims(id, run, holder, answered) VALUES (?, '', '', 1) "
                           "ON CONFLICT(id) DO UPDATE SET answered = 1", [(row[2]["id"],) for row in answered])
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('built', '1')")
        return sum(record["count"] for _, _, record in spend)

    def _taken(self, db, run_id: str, ids: list[str]) -> set[str]:
        """Ids answered already, or held by another run whose process is still alive."""
        taken, alive = set(), {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start:start + _SQL_CHUNK]
            query = f"SELECT id, run, holder, answered FROM claims WHERE id IN ({','.join('?' * len(chunk))})"
            for image_id, run, holder, was_answered in db.execute(query, chunk):
                if was_answered:
                    taken.add(image_id)
                elif run != run_id and holder:
                    if holder not in alive:
                        alive[holder] = self._holder_alive(holder)
                    if alive[holder]:
                        taken.add(image_id)
        return taken

    def _hold(self, db, run_id: str, ids: list[str]) -> None:
        with db:
            db.executemany("INSERT INTO claims(id, run, holder, answered) VALUES (?, ?, ?, 0) "
                           "ON CONFLICT(id) DO UPDATE SET run = excluded.run, holder = excluded.holder",
                           [(i, run_id, self._holder or "") for i in ids])

    def _ensure_holder(self) -> None:
        """This instance's liveness file, locked for as long as the instance (its process) lives. Under the lock."""
        import fcntl

        if self._holder:
            return
        os.makedirs(self._path("holders"), exist_ok=True)
        holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        handle = open(self._path("holders", holder), "a+")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._holder, self._holder_handle = holder, handle

    def _holder_alive(self, holder: str) -> bool:
        import fcntl

        if holder == self._holder:
            return True
        try:
            handle = open(self._path("holders", holder), "r")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def _forget_dead_holders(self) -> None:
        folder = self._path("holders")
        if not os.path.isdir(folder):
            return
        for holder in os.listdir(folder):
            if not self._holder_alive(holder):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, holder))


def _main(argv: list[str]) -> int:
    """``python -m copycat_tf.ledger repair LEDGER/<oracle key> [--num_classes=K]``."""
    usage = "usage: python -m copycat_tf.ledger repair LEDGER/<oracle key> [--num_classes=K]"
    args = [a for a in argv if not a.startswith("--num_classes=")]
    counts = [a.split("=", 1)[1] for a in argv if a.startswith("--num_classes=")]
    if len(args) != 2 or args[0] != "repair" or (counts and not counts[0].isdigit()):
        print(usage, file=sys.stderr)
        return 2
    try:
        ledger = Ledger.open_folder(args[1], int(counts[0]) if counts else None)
        result = ledger.repair()
    except CopycatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args[1]}: moved {result['rejected_answers']} invalid answer(s) from {result['files']} file(s) to rejected/; "
          "their images count as in flight and are asked (and paid for) again on the next run")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
