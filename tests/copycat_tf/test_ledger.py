"""The query ledger: answers survive, the budget is exact across ledgers, runs and processes."""

import json
import multiprocessing

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
    ledger.reserve("run", ["b", "e"], None, None)  # b asked again (answered before), e in flight
    assert sorted(ledger.pending_ids()) == ["c", "d", "e"]
