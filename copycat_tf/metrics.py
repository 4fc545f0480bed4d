"""Scores of a classifier on the TDD and of a copycat against its target.

The paper's "Macro Average" is the macro-averaged F1 over classes (as scikit-learn computes it); the
balanced accuracy (macro recall) and the plain accuracy go beside it. A class that is never predicted
has precision 0 (scikit-learn's zero_division=0), and a class absent from the test set is left out of
the macro averages. Everything is computed from the confusion matrix, so it can be reweighted cheaply
for bootstrap resamples.
"""

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """[true class, predicted class] counts (or weights)."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, weights=weights, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(matrix: np.ndarray) -> dict:
    """macro_f1, balanced_accuracy, accuracy and per-class precision/recall/F1/support."""
    matrix = np.asarray(matrix, np.float64)
    true_positive = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = matrix.sum()
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "per_class": [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, support)
        ],
    }


def classification_scores(y_true, y_pred, num_classes: int) -> dict:
    matrix = confusion(y_true, y_pred, num_classes)
    return {**scores_from_confusion(matrix), "confusion": matrix.astype(int).tolist()}


def cohen_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    """Agreement between two label sequences beyond chance (as sklearn.metrics.cohen_kappa_score)."""
    matrix = confusion(a, b, num_classes).astype(np.float64)
    total = matrix.sum()
    observed = np.trace(matrix) / total
    expected = (matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / total**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def agreement(y_true, pred_a, pred_b, num_classes: int) -> dict:
    """How often two models give the same class: overall and per true class."""
    y_true, same = np.asarray(y_true), np.asarray(pred_a) == np.asarray(pred_b)
    per_class = []
    for c in range(num_classes):
        mask = y_true == c
        per_class.append(float(same[mask].mean()) if mask.any() else None)
    return {"overall": float(same.mean()), "per_class": per_class}


def bootstrap_intervals(y_true, predictions: dict[str, np.ndarray], num_classes: int, reference: str | None,
                        samples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired bootstrap: the same resampled test images score every model; percentile intervals.

    Returns, per model, intervals for macro_f1, balanced_accuracy and accuracy, and with a reference,
    for copy_performance (macro F1 ratio) and agreement.
    """
    y_true = np.asarray(y_true)
    n = len(y_true)
    if samples <= 0 or n == 0:
        return {name: {} for name in predictions}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)  # weights per resample
    keys = ("macro_f1", "balanced_accuracy", "accuracy")
    values = {name: {k: np.empty(samples) for k in keys} for name in predictions}
    for name, pred in predictions.items():
        flat = y_true.astype(np.int64) * num_classes + np.asarray(pred, np.int64)
        for i, weights in enumerate(draws):
            matrix = np.bincount(flat, weights=weights, minlength=num_classes**2).reshape(num_classes, num_classes)
            scores = scores_from_confusion(matrix)
            for k in keys:
                values[name][k][i] = scores[k]
    low, high = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    result = {}
    for name in predictions:
        result[name] = {k: [float(np.percentile(v, low)), float(np.percentile(v, high))] for k, v in values[name].items()}
        if reference and name != reference:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = values[name]["macro_f1"] / values[reference]["macro_f1"]
            same = (np.asarray(predictions[name]) == np.asarray(predictions[reference])).astype(np.float64)
            agree = draws @ same / n
            result[name]["copy_performance"] = [float(np.nanpercentile(ratio, low)), float(np.nanpercentile(ratio, high))]
            result[name]["agreement"] = [float(np.percentile(agree, low)), float(np.percentile(agree, high))]
    return result
