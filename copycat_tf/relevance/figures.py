"""Relevance grids as in the paper's Fig. 6 and the per-image similarity of target and copycat maps.

Images are grouped by who is right: both (correct/correct), only the target (correct/wrong), only
the copycat (wrong/correct). Each grid row shows the input, the target's map and each copycat's map
(several copycats side by side, e.g. a data curve). Each model's map explains its own answer.
"""

import json
import logging
import os

import numpy as np

from copycat_tf.errors import CopycatError
from copycat_tf.relevance import explain, similarity
from copycat_tf.relevance_config import RelevanceConfig
from copycat_tf.run_dir import MODEL, RunDir
from copycat_tf.stage_output import claim_output

GROUPS = ("correct-correct", "correct-wrong", "wrong-correct")
log = logging.getLogger("copycat.relevance")


def load_keras_model(path: str):
    import keras
    import tensorflow as tf

    file = RunDir(path).model if tf.io.gfile.isdir(path) else path
    if not tf.io.gfile.exists(file):
        raise CopycatError(f"{path}: no Keras model (give a .keras file or a copycat-train output folder with {MODEL})")
    return keras.models.load_model(file, compile=False)


def _images(folder: str, size: int, limit: int):
    import tensorflow as tf

    from tfrecords_schema import LABELED_IMAGE, read_records

    pixels, labels = [], []
    for record in read_records(folder, LABELED_IMAGE):
        image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
        pixels.append(tf.image.resize(image, (size, size), antialias=True).numpy())
        labels.append(record["label"])
        if len(labels) == limit:
            break
    if not labels:
        raise CopycatError(f"{folder} holds no images")
    return np.stack(pixels).astype(np.float32), np.array(labels)


def _grid(path: str, title: str, images, columns: list[tuple[str, np.ndarray]], answers) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    figure, axes = plt.subplots(rows, 1 + len(columns), figsize=(2.2 * (1 + len(columns)), 2.2 * rows), squeeze=False)
    for r in range(rows):
        axes[r][0].imshow(np.clip(images[r], 0, 255).astype(np.uint8))
        axes[r][0].set_title(f"label {answers['label'][r]}", fontsize=8)
        for c, (name, maps) in enumerate(columns, start=1):
            limit = np.abs(maps[r]).max() or 1.0
            axes[r][c].imshow(maps[r], cmap="bwr", vmin=-limit, vmax=limit)
            axes[r][c].set_title(f"{name}: {answers[name][r]}", fontsize=8)
    for axis in axes.ravel():
        axis.axis("off")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def relevance_figures(config: RelevanceConfig) -> dict:
    config.validate()
    claim_output(config.output, "relevance", [("--images", config.images)], clear=False)
    if not config.copycats:
        raise CopycatError("give at least one --copycat")
    target = load_keras_model(config.target)
    copycats = {os.path.basename(os.path.normpath(p)) or p: load_keras_model(p) for p in config.copycats}
    size = target.input_shape[1]
    images, labels = _images(config.images, size, config.max_images)
    answers = {"label": labels, "target": target.predict(images, verbose=0).argmax(axis=1)}
    for name, model in copycats.items():
        answers[name] = model.predict(images, verbose=0).argmax(axis=1)
    first = next(iter(copycats))
    right_target, right_copy = answers["target"] == labels, answers[first] == labels
    members = {"correct-correct": right_target & right_copy, "correct-wrong": right_target & ~right_copy,
               "wrong-correct": ~right_target & right_copy}
    os.makedirs(config.output, exist_ok=True)
    report = {"method": config.method, "images": len(labels), "groups": {}, "similarity": {}}
    per_copycat = {name: [] for name in copycats}
    for group, mask in members.items():
        chosen = np.flatnonzero(mask)[: config.count]
        report["groups"][group] = {"available": int(mask.sum()), "shown": len(chosen)}
        if not len(chosen):
            continue
        batch = images[chosen]
        target_maps = explain(target, batch, answers["target"][chosen], config.method)
        columns = [("target", target_maps)]
        for name, model in copycats.items():
            maps = explain(model, batch, answers[name][chosen], config.method)
            columns.append((name, maps))
            for i, index in enumerate(chosen):
                per_copycat[name].append({"image": int(index), "group": group, **similarity(target_maps[i], maps[i])})
        path = os.path.join(config.output, f"relevance-{group}.png")
        _grid(path, f"{config.method}: {group.replace('-', ' / ')} (target / {first})", batch, columns,
              {k: v[chosen] for k, v in answers.items()})
        log.info("wrote %s", path)
    for name, rows in per_copycat.items():
        keys = [k for k in (rows[0] if rows else {}) if k not in ("image", "group")]
        report["similarity"][name] = {"mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}, "per_image": rows}
    with open(os.path.join(config.output, "relevance.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    return report
