"""Evaluate models on a TDD folder through the oracle interface (a target may be a black box).

Each model answers the test images' top-1 classes in batches; the report holds, per model, the macro
F1 (the paper's Macro Average), balanced accuracy, accuracy, per-class precision/recall/F1/support
and the confusion matrix; with a reference (the target), also agreement (overall and per class),
Cohen's kappa between the two, and copy performance (macro F1 ratio); and 95% paired bootstrap
intervals for all of these.
"""

import logging

import numpy as np

from copycat_tf import metrics
from copycat_tf.evaluation_config import EvaluateConfig
from copycat_tf.errors import CopycatError
from copycat_tf.oracles import OracleSpec, open_oracle
from tfrecords_schema import LABELED_IMAGE, open_folder, read_records
from tfrecords_schema.extras import labeled_extra

log = logging.getLogger("copycat.evaluate")


def _predict(target: str, images: list[bytes], batch_size: int) -> np.ndarray:
    oracle = open_oracle(OracleSpec(target))
    predictions = []
    for start in range(0, len(images), batch_size):
        predictions.append(oracle.classify(images[start:start + batch_size]))
        if (start // batch_size) % 20 == 0:
            log.info("%s: %d of %d test images", target, min(start + batch_size, len(images)), len(images))
    oracle.close()
    return np.concatenate(predictions) if predictions else np.zeros([0], np.int64)


def evaluate(config: EvaluateConfig) -> dict:
    config.validate()
    if not config.models:
        raise CopycatError("give at least one --model to evaluate")
    folder = open_folder(config.test, LABELED_IMAGE)
    facts = labeled_extra(folder.manifest.extra)
    num_classes = config.num_classes or facts.num_classes
    if not num_classes:
        raise CopycatError(f"{config.test}: its manifest does not say the number of classes; pass --num_classes")
    records = list(read_records(config.test, LABELED_IMAGE))
    if not records:
        raise CopycatError(f"{config.test} holds no test images")
    images = [r["image"] for r in records]
    y_true = np.array([r["label"] for r in records])
    names = list(dict.fromkeys(config.models + ([config.reference] if config.reference else [])))
    predictions = {name: _predict(name, images, config.batch_size) for name in names}
    for name, pred in predictions.items():
        if pred.size and pred.max() >= num_classes:
            raise CopycatError(f"{name} answers class {pred.max()}, but the test set has {num_classes} classes")
    intervals = metrics.bootstrap_intervals(y_true, predictions, num_classes, config.reference, config.bootstrap, config.seed)
    reports = {}
    for name in names:
        report = {"model": name, **metrics.classification_scores(y_true, predictions[name], num_classes)}
        if config.reference and name != config.reference:
            reference_f1 = metrics.classification_scores(y_true, predictions[config.reference], num_classes)["macro_f1"]
            report["agreement"] = metrics.agreement(y_true, predictions[name], predictions[config.reference], num_classes)
            report["cohen_kappa"] = metrics.cohen_kappa(predictions[name], predictions[config.reference], num_classes)
            report["copy_performance"] = report["macro_f1"] / reference_f1 if reference_f1 else None
        report["intervals_95"] = intervals[name]
        reports[name] = report
    first = reports[config.models[0]]
    return {
        **first,
        "test": config.test, "test_images": len(records), "num_classes": int(num_classes),
        "class_names": facts.class_names or None, "reference": config.reference,
        "bootstrap_samples": config.bootstrap, "models": reports,
    }
