"""copycat-experiment: configs, the small-scale switch, and (slow) a tiny data curve and robustness run."""

import json
import pathlib

import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.experiment import load_config, run_experiment

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["digits", "DIG10", "SHN10", "GOC9", "ACT101", "FER7", "PED2", "SIG30"])
def test_shipped_configs_load_at_both_scales(name):
    full = load_config(str(CONFIGS / f"{name}.json"), small=False)
    small = load_config(str(CONFIGS / f"{name}.json"), small=True)
    assert full["problem"] == small["problem"] == name
    assert small["target"]["width"] < full["target"]["width"] or small["target"]["epochs"] < full["target"]["epochs"]
    assert small["data_curve"] and small["robustness_seeds"]


def test_bad_configs_are_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"problem": "digits", "target": {}, "copycat": {}, "experiments": ["table9"]}))
    with pytest.raises(CopycatError, match="unknown experiment.*table9"):
        load_config(str(path), small=False)
    path.write_text("{not json")
    with pytest.raises(CopycatError, match="cannot read it as JSON"):
        load_config(str(path), small=False)


@pytest.mark.slow
def test_tiny_data_curve_and_robustness(tmp_path):
    tiny = {"model": "vgg16_bn", "width": 0.0625, "input_size": 32, "epochs": 1, "lr": 0.01, "batch_size": 32}
    config = {"problem": "digits", "sources": ["bundled"], "bundled_crops": 300, "max_side": 48, "per_class": 20,
              "target": tiny, "copycat": tiny, "experiments": ["data_curve", "robustness"], "data_curve": [100, 200],
              "robustness_seeds": [0, 1], "bootstrap": 50}
    results = run_experiment(config, str(tmp_path))
    assert set(results["runs"]) >= {"BL-VGG-ODD-OL", "CC-VGG-NPDD-SL@100", "CC-VGG-NPDD-SL@200",
                                    "CC-VGG-NPDD+PDD-SL@100", "CC-VGG-NPDD+PDD-SL@200"}
    robustness = results["robustness"]
    assert [p["seed"] for p in robustness["per_seed"]] == [0, 1]
    assert robustness["copy_performance_mean"] is not None and robustness["copy_performance_std"] >= 0
    assert (tmp_path / "report" / "fig5_data_curve.png").exists()
    assert json.loads((tmp_path / "experiment.json").read_text())["robustness"] == robustness
    stolen = json.loads((tmp_path / "lake" / "stolen" / "BL-VGG-ODD-OL" / "NPDD-SL@100" / "manifest.json").read_text())
    assert stolen["counts"]["labeled"] == 100  # the data-curve point really used 100 queries


def test_the_coverage_config_names_known_strategies():
    from copycat_tf.experiment import STRATEGIES

    for small in (False, True):
        config = load_config(str(CONFIGS / "digits_coverage.json"), small=small)
        assert config["experiments"] == ["coverage"]
        assert set(config["coverage"]["strategies"]) <= set(STRATEGIES) and config["coverage"]["budgets"]
    assert load_config(str(CONFIGS / "digits_coverage.json"), small=False)["coverage"]["budgets"] == [2000, 5000, 10000]


@pytest.mark.slow
def test_tiny_coverage_experiment(tmp_path):
    tiny = {"model": "vgg16_bn", "width": 0.0625, "input_size": 32, "epochs": 1, "lr": 0.01, "batch_size": 32}
    config = {"problem": "digits", "sources": ["bundled"], "bundled_crops": 300, "max_side": 48, "target": tiny,
              "copycat": tiny, "experiments": ["coverage"], "bootstrap": 20,
              "coverage": {"budgets": [100], "strategies": ["random", "adaptive+transforms"],
                           "pool_transforms": "grayscale+invert",
                           "steal_options": ["--adaptive_rounds=2", "--adaptive_input_size=16", "--adaptive_epochs=1"]}}
    results = run_experiment(config, str(tmp_path))
    points = {p["strategy"]: p for p in results["coverage"]}
    assert set(points) == {"random", "adaptive+transforms"}
    for point in points.values():
        assert 1 <= point["classes_seen"] <= 10 and 0 <= point["agreement"] <= 1
    stolen = tmp_path / "lake" / "stolen" / "BL-VGG-ODD-OL"
    manifest = json.loads((stolen / "NPDD-SL.adaptive+transforms@100" / "manifest.json").read_text())
    assert manifest["extra"]["queries_total"] <= 100 and manifest["extra"]["strategy"] == "adaptive"
    assert manifest["extra"]["pool"]["variants"] == ["grayscale+invert"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "CC-VGG-NPDD-SL.adaptive+transforms@100 | adaptive | grayscale+invert | " in report
    assert (tmp_path / "report" / "coverage_curves.png").stat().st_size > 0
