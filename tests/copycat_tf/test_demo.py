"""The demo end to end at a reduced size (slow: it trains five small models)."""

import json
import os

import pytest

from copycat_tf.demo import COPYCATS, TARGET, DemoConfig, run_demo, table3_row


@pytest.mark.slow
def test_demo_at_reduced_size(tmp_path):
    summary = run_demo(DemoConfig(output=str(tmp_path), crops=600, per_class=60, epochs=3, width=0.125, seeds=2))
    for name in (TARGET, "BL-VGG-PDD-OL", *COPYCATS):
        run = tmp_path / "runs" / name
        assert (run / "export" / "saved_model.pb").exists() and (run / "evaluation.json").exists(), name
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "runs" / "relevance" / "relevance.json").exists()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == summary
    assert summary["runs"][TARGET]["macro_f1"] > 0.5  # ten classes: chance is about 0.1
    assert set(summary["copycats"]) >= set(COPYCATS)
    paper = summary["copycats"]["CC-VGG-NPDD-SL"]
    assert paper["seeds"] == [0, 1] and len(paper["copy_performance_per_seed"]) == 2
    assert paper["copy_performance"] == pytest.approx(sum(paper["copy_performance_per_seed"]) / 2)
    assert table3_row(summary).startswith("Table 3, digits (copy performance = copycat macro F1 / target macro F1): target BL-VGG-ODD-OL")
    stamp = os.path.getmtime(tmp_path / "runs" / TARGET / "metrics.json")
    run_demo(DemoConfig(output=str(tmp_path), crops=600, per_class=60, epochs=3, width=0.125, seeds=2))  # reuses every stage
    assert os.path.getmtime(tmp_path / "runs" / TARGET / "metrics.json") == stamp
