"""copycat-evaluate end to end: exported models judged on a test folder, against a reference."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from sklearn import metrics as sk

from copycat_tf.evaluation import EvaluateConfig, evaluate
from copycat_tf.export import export_classifier
from copycat_tf.oracles import OracleSpec, open_oracle
from tests import binaries
from tests.copycat_tf.training.digits import digits_folder as _folder
from tfrecords_schema import LABELED_IMAGE, read_records


def _model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255.0),
                             keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    test = _folder(root / "tdd", range(1000, 1200))
    target = export_classifier(_model(0), str(root / "target"))
    copy = export_classifier(_model(1), str(root / "copy"))
    return root, test, target, copy


def test_report_matches_sklearn_on_the_models_own_answers(setup):
    _, test, target, copy = setup
    report = evaluate(EvaluateConfig(models=[copy], test=test, reference=target, bootstrap=200))
    records = list(read_records(test, LABELED_IMAGE))
    y_true = np.array([r["label"] for r in records])
    answers = {name: open_oracle(OracleSpec(name)).classify([r["image"] for r in records]) for name in (copy, target)}
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y_true, answers[copy], average="macro", zero_division=0))
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y_true, answers[copy]))
    assert report["agreement"]["overall"] == pytest.approx(np.mean(answers[copy] == answers[target]))
    assert report["cohen_kappa"] == pytest.approx(sk.cohen_kappa_score(answers[copy], answers[target]))
    target_f1 = sk.f1_score(y_true, answers[target], average="macro", zero_division=0)
    assert report["copy_performance"] == pytest.approx(report["macro_f1"] / target_f1)
    for key in ("macro_f1", "balanced_accuracy", "accuracy", "per_class", "confusion"):
        assert key in report
    low, high = report["intervals_95"]["macro_f1"]
    assert low <= report["macro_f1"] <= high
    assert set(report["models"]) == {copy, target}


def test_an_exact_copy_performs_at_one(setup, tmp_path):
    _, test, target, _ = setup
    twin = shutil.copytree(target, tmp_path / "twin")
    report = evaluate(EvaluateConfig(models=[str(twin)], test=test, reference=target, bootstrap=0))
    assert report["copy_performance"] == pytest.approx(1.0)
    assert report["agreement"]["overall"] == 1.0 and report["cohen_kappa"] == pytest.approx(1.0)


def test_binary_writes_the_json_report(setup, tmp_path):
    _, test, target, copy = setup
    output = tmp_path / "report.json"
    result = binaries.run("copycat_bin.evaluate", [f"--model={copy}", f"--reference={target}", f"--test={test}",
                                                   f"--output={output}", "--bootstrap=100"],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["reference"] == target and "copy_performance" in report
    assert result.stdout.strip().splitlines()[-1].startswith(f"{copy}: macro F1")  # the plan's summary line
