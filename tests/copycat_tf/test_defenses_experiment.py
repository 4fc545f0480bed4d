"""The defenses experiment end to end at its --small scale (servers on loopback, real attacks): slow."""

import json
import os

import pytest

from copycat_tf.experiment import load_config, run_experiment

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "digits_defenses.json")


@pytest.mark.slow
def test_the_small_defenses_experiment_prices_each_defense(tmp_path):
    config = load_config(CONFIG, small=True)
    config["defenses"] = {**config["defenses"], "port": 18790}
    results = run_experiment(config, str(tmp_path / "out"))
    rows = {row["defense"]: row for row in results["defenses"]}
    assert set(rows) == {"none", "watermark"}
    assert rows["none"]["honest_macro_f1"] == pytest.approx(rows["none"]["target_macro_f1"])  # the bare API is exact
    assert rows["watermark"]["honest_macro_f1"] <= rows["none"]["honest_macro_f1"]
    assert len(rows["watermark"]["ownership_p_copycat"]) == 1 and "ownership_p_copycat" not in rows["none"]
    assert rows["none"]["benign_queries"] > 0 and rows["watermark"]["benign_flagged_at"] is None
    log = [json.loads(x) for x in open(tmp_path / "out" / "defenses" / "watermark" / "queries.jsonl")]
    assert {line["key"] for line in log} == {"benign", "attacker-random-s0"}
    assert sum(line["key"] == "attacker-random-s0" for line in log) == 300  # the budget, every query logged
    assert os.path.exists(tmp_path / "out" / "report" / "defenses.png")
