"""copycat-report from small fabricated run folders: every table and figure, PNGs that open."""

import json

import keras
import PIL.Image
import pytest

from copycat_tf.coverage import coverage_report
from copycat_tf.errors import CopycatError
from copycat_tf.models import build_model
from copycat_tf.report import ReportConfig, build_report
from copycat_tf.report.runs import read_run
from tests.copycat_tf.training.digits import digits_folder as _folder
from tfrecords_schema import Manifest, read_manifest, write_manifest


def _relabel(folder, stage, **extra):
    manifest = read_manifest(folder)
    manifest.stage = stage
    manifest.extra.update(extra)
    write_manifest(folder, manifest)


def _run(root, name, f1, train, test, model=False, train_records=300, agreement=None):
    folder = root / name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"options": {"train": [train]}, "train_records": train_records}))
    evaluation = {"macro_f1": f1, "balanced_accuracy": f1, "accuracy": f1, "test": test}
    if agreement is not None:
        evaluation["agreement"] = {"overall": agreement}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    if model:
        keras.utils.set_random_seed(0)
        build_model("vgg16_bn", 10, 32, width=1 / 16).save(folder / "model.keras")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    test = _folder(root / "tdd", range(1000, 1100))
    _relabel(test, "prepare_problem", problem="digits")
    odd = _folder(root / "odd", range(0, 100))
    _relabel(odd, "prepare_problem", problem="digits")
    stolen = _folder(root / "npdd-sl", range(200, 300))
    _relabel(stolen, "steal_labels", label_histogram=[40, 0, 10, 10, 10, 10, 10, 5, 5, 0], queries_total=20000)
    manifest = read_manifest(stolen)
    manifest.options["price_per_1000"] = 2.0
    manifest.inputs = [{"folder": str(root / "npdd"), "manifest": {"stage": "build_npdd", "inputs": []}}]
    write_manifest(stolen, manifest)
    pdd_sl = _folder(root / "pdd-sl", range(400, 450))
    _relabel(pdd_sl, "steal_labels", label_histogram=[5] * 10, queries_total=50)
    runs_root = root / "runs"
    runs_root.mkdir()
    _run(runs_root, "BL-VGG-ODD-OL", 0.98, odd, test, model=True, train_records=600)
    _run(runs_root, "BL-VGG-PDD-OL", 0.90, odd, test)
    _run(runs_root, "BL-Alex-PDD-OL", 0.88, odd, test)
    _run(runs_root, "CC-VGG-NPDD-SL", 0.735, stolen, test)
    _run(runs_root, "CC-VGG-NPDD+PDD-SL", 0.882, pdd_sl, test)
    _run(runs_root, "CC-VGG-PDD-SL", 0.95, pdd_sl, test)
    _run(runs_root, "CC-Alex-NPDD-SL", 0.70, stolen, test)
    for queries, f1 in ((1000, 0.4), (5000, 0.6), (20000, 0.735)):
        _run(runs_root, f"CC-VGG-NPDD-SL@{queries}", f1, stolen, test, agreement=f1)
    # adaptive stealing through a transformed pool, then balanced: the coverage table and curves
    for queries, f1, histogram in ((1000, 0.7, [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]),
                                   (200, 0.5, [20, 20, 20, 20, 20, 20, 20, 20, 39, 1])):
        adaptive = _folder(root / f"adaptive-{queries}", range(500, 520))
        _relabel(adaptive, "steal_labels", label_histogram=histogram, strategy="adaptive",
                 coverage=coverage_report(histogram), queries_total=queries)
        manifest = read_manifest(adaptive)
        manifest.options["pool_transforms"] = ["grayscale+invert"]
        manifest.inputs = [{"folder": str(root / "pool"), "manifest": {"stage": "pool_transforms", "inputs": [
            {"folder": str(root / "npdd"), "manifest": {"stage": "build_npdd", "inputs": []}}]}}]
        write_manifest(adaptive, manifest)
        balanced = _folder(root / f"adaptive-{queries}-balanced", range(500, 520))
        _relabel(balanced, "balance", replication_factor=[round(100 / n, 3) for n in histogram])
        manifest = read_manifest(balanced)
        manifest.inputs = [{"folder": adaptive, "manifest": read_manifest(adaptive).to_dict()}]
        write_manifest(balanced, manifest)
        _run(runs_root, f"CC-VGG-NPDD-SL.adaptive+transforms@{queries}", f1, balanced, test, agreement=f1 + 0.05)
    (runs_root / "not-a-run").mkdir()
    return runs_root


def test_names_follow_the_papers_scheme(runs):
    run = read_run(str(runs / "CC-VGG-NPDD+PDD-SL"))
    assert (run.kind, run.arch, run.data, run.labels, run.problem) == ("CC", "VGG", "NPDD+PDD", "SL", "digits")
    assert read_run(str(runs / "CC-VGG-NPDD-SL@5000")).queries == 5000
    assert read_run(str(runs / "not-a-run")) is None
    variant = read_run(str(runs / "CC-VGG-NPDD-SL.adaptive+transforms@200"))
    assert (variant.data, variant.variant, variant.queries) == ("NPDD", "adaptive+transforms", 200)
    assert variant.base_name == "CC-VGG-NPDD-SL.adaptive+transforms"


def test_label_distribution_is_the_npdd_ones_not_the_pdd_ones(runs):
    from copycat_tf.report.figures import npdd_label_histograms
    from copycat_tf.report.runs import find_runs

    assert npdd_label_histograms(find_runs([str(runs)])) == {"digits": [40, 0, 10, 10, 10, 10, 10, 5, 5, 0]}


def test_every_table_and_figure(runs, tmp_path):
    produced = build_report(ReportConfig(runs=[str(runs)], output=str(tmp_path), tsne_samples=40))
    assert set(produced["figures"]) == {"fig4_label_distribution.png", "fig5_data_curve.png", "fig2_tsne.png",
                                        "coverage_curves.png"}
    for name in produced["figures"]:
        with PIL.Image.open(tmp_path / name) as image:
            image.load()
            assert image.size[0] > 200
    report = (tmp_path / "report.md").read_text()
    assert "| digits | 0.980 | 0.900 | CC-VGG-NPDD-SL | 0.735 | 75.0% | 81.7% |" in report  # Table 3
    assert "| digits | 0.980 | 0.880 | CC-Alex-NPDD-SL | 0.700 | 71.4% | 79.5% |" in report  # Table 4
    # Table 5: 20,000 queries at 2.00 per 1000 = 40.00 against 600 ODD images at 0.05 = 30.00 -> break even at 1.50
    assert "| digits | CC-VGG-NPDD-SL | 20000 | 2.00 | 40.00 | 600 | 30.00 | 1.50 |" in report
    # coverage: the paper's random stealing misses classes 1 and 9; adaptive at 200 queries needed 100x replication
    assert "| digits | CC-VGG-NPDD-SL | random | – | 100 | 8 of 10 | 1, 9 | 40% | 0.0000 | – |" in report
    assert ("| digits | CC-VGG-NPDD-SL.adaptive+transforms@200 | adaptive | grayscale+invert | 200 | 10 of 10 | – | 20% "
            "| 0.0050 | 100.0 |") in report
    page = (tmp_path / "index.html").read_text()
    assert "<img src='fig5_data_curve.png'" in page and "Table 3" in page


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(CopycatError, match="no run folders"):
        build_report(ReportConfig(runs=[str(tmp_path)], output=str(tmp_path / "out")))
