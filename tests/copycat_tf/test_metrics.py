"""Scores equal scikit-learn's; bootstrap intervals hold the estimate and narrow with more data."""

import numpy as np
import pytest
from sklearn import metrics as sk

from copycat_tf import metrics


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_sklearn_with_a_class_never_predicted(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, 300)
    y_pred = np.where(rng.random(300) < 0.5, np.minimum(y_true, 4), rng.integers(0, 5, 300))  # 5 is never predicted
    scores = metrics.classification_scores(y_true, y_pred, 6)
    assert scores["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert scores["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    assert scores["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(6), zero_division=0)
    for c, row in enumerate(scores["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((precision[c], recall[c], f1[c], support[c]))
    assert scores["confusion"] == sk.confusion_matrix(y_true, y_pred, labels=range(6)).tolist()


def test_a_class_absent_from_the_test_set_is_left_out_of_the_averages():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])  # class 2 predicted but never true
    scores = metrics.classification_scores(y_true, y_pred, 3)
    assert scores["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, labels=[0, 1], average="macro", zero_division=0))
    assert scores["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))


def test_kappa_and_agreement():
    rng = np.random.default_rng(3)
    a, b, y = rng.integers(0, 4, 200), rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert metrics.cohen_kappa(a, b, 4) == pytest.approx(sk.cohen_kappa_score(a, b))
    assert metrics.cohen_kappa(a, a, 4) == pytest.approx(1.0)
    result = metrics.agreement(y, a, b, 4)
    assert result["overall"] == pytest.approx(np.mean(a == b))
    assert result["per_class"][2] == pytest.approx(np.mean((a == b)[y == 2]))


def _noisy(n, seed, error=0.2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    target = np.where(rng.random(n) < error, rng.integers(0, 5, n), y)
    copy = np.where(rng.random(n) < error, rng.integers(0, 5, n), target)
    return y, {"target": target, "copy": copy}


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_more_data():
    widths = []
    for n in (200, 3200):
        y, predictions = _noisy(n, seed=n)
        intervals = metrics.bootstrap_intervals(y, predictions, 5, reference="target", samples=400, seed=1)
        for name, pred in predictions.items():
            low, high = intervals[name]["macro_f1"]
            assert low <= metrics.classification_scores(y, pred, 5)["macro_f1"] <= high
        ratio = metrics.classification_scores(y, predictions["copy"], 5)["macro_f1"] / metrics.classification_scores(y, predictions["target"], 5)["macro_f1"]
        low, high = intervals["copy"]["copy_performance"]
        assert low <= ratio <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # 16x the data: about 4x narrower
