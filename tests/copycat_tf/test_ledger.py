"""The query ledger: answers survive, the budget is exact across ledgers, runs and processes."""

import json
import multiprocessing
import os
import threading

import numpy as np
import pytest

from copycat_tf import ledger as ledger_module
from copycat_tf.errors import CopycatError
from copycat_tf.ledger import Ledger, oracle_key


def _ids(n, start=0):
    return [f"{i:032x}" for i in range(start, start + n)]


def test_answers_are_read_back(tmp_path):
    ledger = Ledger(str(tmp_path), "savedmodel:abc")
    ledger.record(_ids(3), [2, 0, 1])
    ledger.record(_ids(2, 3), [4, 4])
    assert ledger.read_answers() == dict(zip(_ids(5), [2, 0, 1, 4, 4]))


def test_each_oracle_has_its_own_answers(tmp_path):
    Ledger(str(tmp_path), "savedmodel:a").record(_ids(2), [1, 1])
    assert Ledger(str(tmp_path), "savedmodel:b").read_answers() == {}
    info = json.loads((tmp_path / oracle_key("savedmodel:a") / "oracle.json").read_text())
    assert info["fingerprint"] == "savedmodel:a"


def test_budget_is_exact_and_survives_a_new_run(tmp_path):
    ledger = Ledger(str(tmp_path), "o")
    assert ledger.reserve("run1", _ids(8), max_queries=20, process_budget=None) == _ids(8)
    assert ledger.reserve("run1", _ids(8, 8), max_queries=20, process_budget=None) == _ids(8, 8)
    assert ledger.reserve("run1", _ids(8, 16), max_queries=20, process_budget=None) == _ids(4, 16)  # a partial batch
    assert ledger.reserve("run1", _ids(8, 24), max_queries=20, process_budget=None) == []
    again = Ledger(str(tmp_path), "o")
    assert again.reconcile() == 20
    assert again.reserve("run2", _ids(8, 24), max_queries=20, process_budget=None) == []
    assert again.reserve("run2", _ids(8, 24), max_queries=25, process_budget=None) == _ids(5, 24)
    assert again.spent() == 25 and again.spent_by_run("run2") == 5


def test_process_budget_caps_a_process_without_a_global_cap(tmp_path):
    ledger = Ledger(str(tmp_path), "o")
    assert len(ledger.reserve("r", _ids(8), max_queries=None, process_budget=10)) == 8
    assert len(ledger.reserve("r", _ids(8, 8), max_queries=None, process_budget=10)) == 2
    assert ledger.spent() == 10


def _spend(folder, start, results):
    ledger = Ledger(folder, "o")
    granted = 0
    for batch in range(10):
        granted += len(ledger.reserve("p", _ids(7, start + 7 * batch), max_queries=100, process_budget=None))
    results.put(granted)


def test_budget_is_exact_across_processes(tmp_path):
    Ledger(str(tmp_path), "o").reconcile()
    results = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(target=_spend, args=(str(tmp_path), 1000 * i, results))
               for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    granted = sum(results.get() for _ in workers)
    assert granted == 100  # 3 x 70 asked for
    assert Ledger(str(tmp_path), "o").spent() == 100


def test_leftover_temporary_files_are_ignored(tmp_path):
    ledger = Ledger(str(tmp_path), "o")
    ledger.record(_ids(1), [3])
    (tmp_path / oracle_key("o") / "answers" / "half-written.jsonl.123.tmp").write_text('{"id": "x", "la')
    assert ledger.read_answers() == {_ids(1)[0]: 3}


def test_pending_ids_are_the_sent_batches_never_answered(tmp_path):
    ledger = Ledger(str(tmp_path), "oracle-a")
    ledger.reserve("run", ["a", "b"], None, None)
    ledger.record(["a", "b"], [0, 1])
    ledger.reserve("run", ["c", "d"], None, None)  # sent, then the process died before the answer
    assert ledger.reserve("run", ["b", "e"], None, None) == []  # b is answered: never paid for again
    assert ledger.claim("run", ["b", "e"], None, None) == ["e"]  # claim skips it; e is in flight
    assert sorted(ledger.pending_ids()) == ["c", "d", "e"]


# -- invalid answers (issue #12, finding 3) --------------------------------------------------------

def _write_answers(tmp_path, fingerprint, rows):
    folder = tmp_path / oracle_key(fingerprint) / "answers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "old.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_invalid_answers_are_never_recorded(tmp_path):
    ledger = Ledger(str(tmp_path), "o", {"num_classes": 5})
    for labels in ([0, -1], [999, 1], [True, 1], [1.5, 1]):
        with pytest.raises(CopycatError, match="refusing to record"):
            ledger.record(_ids(2), labels)
    with pytest.raises(CopycatError, match="refusing to record 1 answers for 2 images"):
        ledger.record(_ids(2), [1])
    assert ledger.read_answers() == {}
    ledger.record(_ids(2), [np.int64(4), 0])
    assert ledger.read_answers() == dict(zip(_ids(2), [4, 0]))


def test_a_ledger_holding_invalid_answers_is_refused_until_repaired(tmp_path, capsys):
    ids = _ids(4)
    Ledger(str(tmp_path), "o").reserve("old", ids, None, None)  # an older copycat paid for them ...
    _write_answers(tmp_path, "o", [{"id": ids[0], "label": 2}, {"id": ids[1], "label": -1},
                                   {"id": ids[2], "label": 999}, {"id": ids[3], "label": 4}])  # ... and kept these
    ledger = Ledger(str(tmp_path), "o", {"num_classes": 5})
    folder = str(tmp_path / oracle_key("o"))
    for read in (ledger.reconcile, ledger.read_answers):
        with pytest.raises(CopycatError) as error:
            read()
        message = str(error.value)
        assert folder in message and "2 answer(s)" in message and "not a class id [0, 5)" in message
        assert f"python -m copycat_tf.ledger repair {folder} --num_classes=5" in message and "\n" not in message

    assert ledger_module._main(["repair", folder, "--num_classes=5"]) == 0
    assert "moved 2 invalid answer(s)" in capsys.readouterr().out
    assert ledger.reconcile() == 4  # accepted now; the spend is kept
    assert ledger.read_answers() == {ids[0]: 2, ids[3]: 4}
    assert sorted(ledger.pending_ids()) == sorted(ids[1:3])  # asked (and paid for) again on the next run: stated
    assert len((tmp_path / oracle_key("o") / "rejected" / "old.jsonl").read_text().splitlines()) == 2


# -- the budget and concurrent runs (issue #12, finding 5) -----------------------------------------

def test_reconcile_counts_a_reservation_made_while_it_runs(tmp_path, monkeypatch):
    """reconcile() sums the spend records under the ledger lock: a concurrent reservation is never lost."""
    Ledger(str(tmp_path), "o").reserve("earlier", _ids(290), max_queries=300, process_budget=None)
    reconciling, other = Ledger(str(tmp_path), "o"), Ledger(str(tmp_path), "o")
    racer = threading.Thread(target=other.reserve, args=("other", _ids(10, 1000), 300, None))
    real_glob = ledger_module.fileio.glob

    def glob_while_another_run_reserves(pattern):
        found = real_glob(pattern)
        if pattern.endswith(os.path.join("spend", "*.json")) and not racer.is_alive() and racer.ident is None:
            racer.start()  # another run reserves between the listing of the spend records and the new total
            racer.join(0.5)  # (while reconcile holds the lock it has to wait: this join times out)
        return found

    monkeypatch.setattr(ledger_module.fileio, "glob", glob_while_another_run_reserves)
    reconciling.reconcile()
    racer.join()
    monkeypatch.undo()
    late = Ledger(str(tmp_path), "o").reserve("late", _ids(20, 2000), max_queries=300, process_budget=None)
    assert Ledger(str(tmp_path), "o").spent() == 300  # 290 + 10 + 0: the cap holds
    assert late == []


def test_two_runs_never_pay_for_the_same_images(tmp_path):
    first, second = Ledger(str(tmp_path), "o"), Ledger(str(tmp_path), "o")
    assert first.reserve("run-a", _ids(20), max_queries=None, process_budget=None) == _ids(20)  # in flight in run a
    assert second.reserve("run-b", _ids(20), max_queries=None, process_budget=None) == []
    assert second.claim("run-b", _ids(24), max_queries=None, process_budget=None) == _ids(4, 20)  # only the new ones
    first.record(_ids(20), [1] * 20)
    assert second.reserve("run-b", _ids(20), max_queries=None, process_budget=None) == []  # answered: never again
    assert first.reserve("run-a", _ids(20), max_queries=None, process_budget=None) == []
    assert Ledger(str(tmp_path), "o").spent() == 24


def _reserve_and_die(folder, ids):
    Ledger(folder, "o").reserve("crashed", ids, None, None)
    os._exit(0)  # no answer recorded: the batch was in flight when the run died


def test_ids_in_flight_in_a_dead_run_are_asked_again(tmp_path):
    worker = multiprocessing.get_context("fork").Process(target=_reserve_and_die, args=(str(tmp_path), _ids(8)))
    worker.start()
    worker.join()
    ledger = Ledger(str(tmp_path), "o")
    assert ledger.pending_ids() == _ids(8)
    assert ledger.reserve("rerun", _ids(8), max_queries=None, process_budget=None) == _ids(8)
    ledger.reconcile()  # forgets the dead run's holder file
    assert len(os.listdir(tmp_path / oracle_key("o") / "holders")) == 1


def test_a_resend_is_paid_for_all_or_nothing(tmp_path):
    ledger = Ledger(str(tmp_path), "o")
    assert ledger_module.pay_for_resend(4) is None  # no open batch: nothing to pay
    ledger.reserve("r", _ids(4), max_queries=10, process_budget=None)
    assert ledger_module.open_batch_ids() == _ids(4)
    assert ledger_module.pay_for_resend(4) is None  # 8 of 10
    assert "--max_queries=10 has 2 left" in ledger_module.pay_for_resend(4)
    assert ledger.spent() == 8 and ledger.pending_ids() == _ids(4)
    ledger.record(_ids(4), [0, 1, 2, 3])
    assert ledger_module.open_batch_ids() is None
