"""Training a target, baseline or copycat from lake folders, resumable, under any tf.distribute strategy.

The paper's recipe: SGD with momentum 0.9 and weight decay 5e-4, the learning rate divided by 10 at
1/3 and 2/3 of the steps, sparse cross-entropy on hard labels. Training runs in chunks of
``checkpoint_every`` steps (default: one epoch); after each chunk the model and optimizer state go to
``OUTPUT/checkpoints``, so a killed run restarted with the same flags resumes from the last chunk and
ends at the same total step count. Outputs: ``checkpoints/``, ``tensorboard/``, ``model.keras``
(the layers, for analysis), ``export/`` (a SavedModel that is itself an oracle) and ``metrics.json``.
"""

import dataclasses
import json
import logging
import math
import os
import tempfile
import time

import keras
import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.export import export_classifier
from copycat_tf.models import build_model, load_imagenet_convolutions
from copycat_tf.training.augment import build_augmentation
from copycat_tf.training.input import lake_dataset, record_count, steps_per_epoch
from copycat_tf.training.strategy import choose_strategy, is_chief
from tfrecords_schema import LABELED_IMAGE, fileio, open_folder

log = logging.getLogger("copycat.train")


@dataclasses.dataclass
class TrainConfig:
    model: str
    train: list[str]
    output: str
    val: str | None = None
    input_size: int = 32
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    init: str | None = None
    strategy: str = "auto"
    mixed_precision: bool = False
    augment: str = "none"
    seed: int = 0
    width: float = 1.0
    dropout: float = 0.5
    checkpoint_every: int = 0  # steps per chunk; 0: one epoch
    deterministic_input: bool = False  # same batches for the same seed (slower input)
    verbose: int = 1


def paper_schedule(lr: float, total_steps: int):
    """The learning rate divided by 10 at 1/3 and at 2/3 of the steps."""
    boundaries = [max(1, total_steps // 3), max(2, 2 * total_steps // 3)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, [lr, lr / 10, lr / 100])


def _classes(folders) -> tuple[int, list[str]]:
    found = {(f.manifest.extra.get("num_classes"), tuple(f.manifest.extra.get("class_names") or ())) for f in folders}
    if len(found) != 1 or None in {n for n, _ in found}:
        raise CopycatError("the --train folders disagree on the classes (or do not say them): "
                           + "; ".join(f"{f.path}: {f.manifest.extra.get('num_classes')}" for f in folders))
    num_classes, names = found.pop()
    return int(num_classes), list(names) or [str(c) for c in range(num_classes)]


def _initialize(model: keras.Model, init: str) -> None:
    """--init: imagenet, a .keras file, or a run folder holding model.keras (layers matched by name and shape)."""
    if init == "imagenet":
        load_imagenet_convolutions(model)
        return
    path = os.path.join(init, "model.keras") if tf.io.gfile.isdir(init) else init
    if not tf.io.gfile.exists(path):
        raise CopycatError(f"--init={init}: no model there (give imagenet, a .keras file or a copycat-train output folder)")
    source = keras.models.load_model(path, compile=False)
    copied = 0
    for layer in model.layers:
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        if [w.shape for w in other.weights] == [w.shape for w in layer.weights] and layer.weights:
            layer.set_weights(other.get_weights())
            copied += 1
    if not copied:
        raise CopycatError(f"--init={init}: no layer of that model fits --model={model.name}")
    log.info("initialized %d layers from %s", copied, path)


def _step(optimizer) -> int:
    """The optimizer's step count (also when it is a distributed variable)."""
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class _SaveCheckpoint(keras.callbacks.Callback):
    def __init__(self, manager: tf.train.CheckpointManager, optimizer):
        super().__init__()
        self._manager = manager
        self._optimizer = optimizer

    def on_epoch_end(self, epoch, logs=None):
        self._manager.save(checkpoint_number=_step(self._optimizer))


def train(config: TrainConfig) -> dict:
    """Train, export and return the metrics written to ``OUTPUT/metrics.json``."""
    keras.utils.set_random_seed(config.seed)
    folders = [open_folder(path, LABELED_IMAGE) for path in config.train]
    num_classes, class_names = _classes(folders)
    records = sum(record_count(f) for f in folders)
    if records == 0:
        raise CopycatError(f"--train={','.join(config.train)} holds no images")
    per_epoch = steps_per_epoch(records, config.batch_size)
    chunk = config.checkpoint_every or per_epoch
    chunks = math.ceil(config.epochs * per_epoch / chunk)
    total_steps = chunks * chunk
    strategy = choose_strategy(config.strategy)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16")
    chief = is_chief(strategy)
    work_dir = config.output if chief else tempfile.mkdtemp(prefix="copycat-worker-")
    fileio.makedirs(work_dir)
    log.info("training %s on %d images (%d classes), %d steps of %d in %d replicas (%s)", config.model, records,
             num_classes, total_steps, config.batch_size, strategy.num_replicas_in_sync, type(strategy).__name__)

    with strategy.scope():
        model = build_model(config.model, num_classes, config.input_size, width=config.width, dropout=config.dropout)
        optimizer = keras.optimizers.SGD(learning_rate=paper_schedule(config.lr, total_steps), momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        manager = tf.train.CheckpointManager(checkpoint, fileio.join(work_dir, "checkpoints"), max_to_keep=2)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).expect_partial()
            log.info("resuming from %s (step %d)", manager.latest_checkpoint, _step(optimizer))
        elif config.init:
            _initialize(model, config.init)
    done = _step(optimizer)
    initial_chunk = done // chunk

    augment = build_augmentation(config.augment, config.seed)
    train_data = lake_dataset(folders, config.input_size, config.batch_size, training=True, seed=config.seed + done,
                              augment=augment, deterministic=config.deterministic_input)
    val_data = None
    if config.val:
        val_data = lake_dataset([open_folder(config.val, LABELED_IMAGE)], config.input_size, config.batch_size, training=False)
    callbacks = [_SaveCheckpoint(manager, optimizer),
                 keras.callbacks.TensorBoard(fileio.join(work_dir, "tensorboard"), update_freq="epoch")]
    started = time.time()
    history = {}
    if initial_chunk < chunks:
        history = model.fit(train_data, epochs=chunks, steps_per_epoch=chunk, initial_epoch=initial_chunk,
                            validation_data=val_data, callbacks=callbacks, verbose=config.verbose,
                            shuffle=False).history  # the tf.data input shuffles itself
    seconds = time.time() - started

    metrics = {
        "model": config.model, "num_classes": num_classes, "class_names": class_names, "train_records": records,
        "steps": _step(optimizer), "total_steps": total_steps, "resumed_from_step": done,
        "replicas": strategy.num_replicas_in_sync, "strategy": type(strategy).__name__,
        "seconds": round(seconds, 2), "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "options": dataclasses.asdict(config),
    }
    for key, values in metrics["history"].items():
        metrics[f"final_{key}"] = values[-1]
    if chief:
        model.save(fileio.join(config.output, "model.keras"))
        export_classifier(model, fileio.join(config.output, "export"))
        fileio.write_text_atomically(fileio.join(config.output, "metrics.json"), json.dumps(metrics, indent=2))
    keras.mixed_precision.set_global_policy("float32")
    return metrics
