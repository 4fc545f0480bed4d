"""Training a target, baseline or copycat from lake folders, resumable, under any tf.distribute strategy.

The paper's recipe: SGD with momentum 0.9 and weight decay 5e-4, the learning rate divided by 10 at
1/3 and 2/3 of the steps, sparse cross-entropy on hard labels. Training runs in chunks of
``checkpoint_every`` steps (default: one epoch); after each chunk the model, optimizer and dropout
generator states go to ``OUTPUT/checkpoints``, so a killed run restarted with the same flags resumes
from the last chunk and ends at the same total step count. Outputs: ``run_options.json`` (written
first: the options that define the run, so a rerun with other data or options is refused instead of
resumed), ``checkpoints/``, ``tensorboard/``, ``model.keras`` (the layers, for analysis), ``export/``
(a SavedModel that is itself an oracle) and ``metrics.json`` (written last: the run is finished).

Repeatable (issue #14): with ``deterministic`` (the default) the same options give the same weights,
predictions and metrics on the same hardware and software, also across a kill and resume: the seed
goes to Python, NumPy, TensorFlow and Keras, TensorFlow's op determinism is on while training, the
input order is a function of (seed, epoch) and the augmentation of (seed, step).
"""

import dataclasses
import json
import logging
import math
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.export import export_classifier
from copycat_tf.models import build_model, load_imagenet_convolutions
from copycat_tf.run_dir import RUN_OPTIONS, RunDir  # RUN_OPTIONS stays importable from here; its home is run_dir
from copycat_tf.stage_output import claim_output, normalized
from copycat_tf.training.augment import build_augmentation, parse_augmentation
from copycat_tf.training.class_balance import EpochDraw, read_labels
from copycat_tf.training.config import TrainConfig
from copycat_tf.training.input import lake_dataset, record_count, steps_per_epoch
from copycat_tf.training.multi_worker import check_same_step, cluster_input, fit_chunks, leave_together
from copycat_tf.training.strategy import choose_strategy, is_chief, is_multi_worker
from tfrecords_schema import LABELED_IMAGE, fileio, open_folder
from tfrecords_schema.extras import labeled_extra

log = logging.getLogger("copycat.train")

# The options that decide what a run computes: a run folder resumes only with the same ones. Not among
# them: --output, --strategy and --peer_timeout (a run may resume on other hardware), --deterministic and --verbose.
DEFINING = ("model", "train", "val", "init", "input_size", "width", "dropout", "epochs", "batch_size", "lr", "momentum",
            "weight_decay", "checkpoint_every", "augment", "class_balance", "seed", "mixed_precision")
DATA_WORDS = {"train_records": "images in --train", "num_classes": "classes in --train",
              "class_names": "class names in --train"}


def paper_schedule(lr: float, total_steps: int):
    """The learning rate divided by 10 at 1/3 and at 2/3 of the steps."""
    boundaries = [max(1, total_steps // 3), max(2, 2 * total_steps // 3)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, [lr, lr / 10, lr / 100])


def _classes(folders) -> tuple[int, list[str]]:
    facts = [labeled_extra(f.manifest.extra) for f in folders]
    found = {(fact.num_classes, tuple(fact.class_names or ())) for fact in facts}
    if len(found) != 1 or None in {n for n, _ in found}:
        raise CopycatError("the --train folders disagree on the classes (or do not say them): "
                           + "; ".join(f"{f.path}: {fact.num_classes}" for f, fact in zip(folders, facts)))
    num_classes, names = found.pop()
    return int(num_classes), list(names) or [str(c) for c in range(num_classes)]


def _initialize(model: keras.Model, init: str) -> None:
    """--init: imagenet, a .keras file, or a run folder holding model.keras (layers matched by name and shape)."""
    if init == "imagenet":
        load_imagenet_convolutions(model)
        return
    path = RunDir(init).model if tf.io.gfile.isdir(init) else init
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


def _run_options(config: TrainConfig, records: int, num_classes: int, class_names: list[str]) -> dict:
    """What this run computes, comparable across reruns: paths made absolute, --augment spelled out."""
    options = {name: getattr(config, name) for name in DEFINING}
    options["train"] = [normalized(path) for path in config.train]
    options["val"] = normalized(config.val) if config.val else None
    options["init"] = normalized(config.init) if config.init and config.init != "imagenet" else config.init or None
    options["augment"] = ",".join(parse_augmentation(config.augment)) or "none"
    return {**options, "train_records": records, "num_classes": num_classes, "class_names": class_names}


def _legacy_options(metrics: dict) -> dict:
    """The options recorded in metrics.json by a copycat-train that wrote no run_options.json."""
    old = dict(metrics.get("options") or {})
    if old.get("train"):
        old["train"] = [normalized(path) for path in old["train"]]
    for name in ("val", "init"):
        if old.get(name) and old[name] != "imagenet":
            old[name] = normalized(old[name])
    if "augment" in old:
        try:
            old["augment"] = ",".join(parse_augmentation(old["augment"])) or "none"
        except CopycatError:
            pass
    old = {name: value for name, value in old.items() if name in DEFINING}
    return {**old, **{name: metrics[name] for name in DATA_WORDS if name in metrics}}


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "(none)" if value is None else str(value)


def _read_json(path: str) -> dict | None:
    if not fileio.exists(path):
        return None
    try:
        data = json.loads(fileio.read_text(path))
    except ValueError:
        raise CopycatError(f"{path} is not valid JSON; it was not written by copycat-train, or was cut short: "
                           "give a new --output") from None
    return data if isinstance(data, dict) else None


def _check_run_folder(config: TrainConfig, options: dict) -> tuple[dict | None, dict | None]:
    """Refuse a run folder made with other options; returns (recorded options, its metrics if finished)."""
    output = config.output
    run = RunDir(output)
    recorded = _read_json(run.run_options)
    metrics = _read_json(run.metrics)
    if recorded is not None:
        recorded = recorded.get("options") or {}
    elif metrics is not None and not fileio.exists(run.marker):
        recorded = _legacy_options(metrics)  # a run folder written before run_options.json existed
    if recorded is None:
        return None, None
    # An option added since the run was recorded (e.g. --class_balance) had its default then.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in DEFINING
                and f.default is not dataclasses.MISSING}
    recorded = {**{name: value for name, value in defaults.items() if name in options}, **recorded}
    differ = [name for name in options if name in recorded and recorded[name] != options[name]]
    trained = metrics is not None or bool(fileio.glob(fileio.join(run.checkpoints, "ckpt-*.index")))
    if differ and trained:
        shown = "; ".join(f"{DATA_WORDS.get(name, '--' + name)}: {_shown(recorded[name])} there, {_shown(options[name])} now"
                          for name in differ)
        raise CopycatError(f"--output={output} holds a copycat-train run made with other options ({shown}); "
                           "resume it with the same options, or train into a new --output "
                           f"(--init={output} starts from its weights)")
    if differ:
        log.info("%s: replacing the options of a run that never saved a checkpoint (%s)", output, ", ".join(differ))
        return None, None
    finished = metrics is not None and all(fileio.exists(path) for path in (run.model, run.saved_model))
    return recorded, (metrics if finished else None)


def _random_states(model: keras.Model) -> list:
    """The layers' random generator states (dropout), which tf.train.Checkpoint does not find by itself:
    saved with the weights so that a resumed run draws the dropout masks an uninterrupted one draws."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _set_op_determinism(enabled: bool) -> bool:
    """Turn TensorFlow's op determinism on or off; returns whether it was on. TF's public API can only turn it
    on, so this uses its internal switch, and where that is missing leaves determinism on once enabled."""
    try:
        from tensorflow.python.framework import config as tf_config

        was = bool(tf_config.is_op_determinism_enabled())
        (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()
        return was
    except (ImportError, AttributeError):
        if enabled:
            tf.config.experimental.enable_op_determinism()
        return True


def train(config: TrainConfig) -> dict:
    """Train, export and return the metrics written to ``OUTPUT/metrics.json``.

    Deterministic (``config.deterministic``, the default): on the same hardware and software the same
    options give the same weights, predictions and metrics, also when the run was killed and resumed.
    """
    config.validate()
    # First, before any TensorFlow op: a multi-worker strategy configures the collective ops at start-up.
    strategy = choose_strategy(config.strategy, peer_timeout=config.peer_timeout)
    folders = [open_folder(path, LABELED_IMAGE) for path in config.train]
    num_classes, class_names = _classes(folders)
    records = sum(record_count(f) for f in folders)
    if records == 0:
        raise CopycatError(f"--train={','.join(config.train)} holds no images")
    draw = _epoch_draw(config, folders, num_classes)
    per_epoch = steps_per_epoch(draw.epoch_size if draw else records, config.batch_size)
    planned = config.epochs * per_epoch
    if config.checkpoint_every > planned:
        raise CopycatError(f"--checkpoint_every={config.checkpoint_every} is out of range: this run has {planned} steps "
                           f"({config.epochs} epochs of {per_epoch}); use 0 (once per epoch) or 1 to {planned}")
    chunk = config.checkpoint_every or per_epoch
    chunks = math.ceil(planned / chunk)
    total_steps = chunks * chunk
    options = _run_options(config, records, num_classes, class_names)
    recorded, finished = _check_run_folder(config, options)
    if finished is not None:
        log.info("%s: already trained with these options (%s steps); nothing to do", config.output, finished.get("steps"))
        return finished

    if is_multi_worker(strategy) and config.batch_size % strategy.num_replicas_in_sync:
        raise CopycatError(f"--batch_size={config.batch_size} does not split over the {strategy.num_replicas_in_sync} "
                           "replicas of the cluster: give a multiple of it (it is the global batch)")
    chief = is_chief(strategy)
    if chief:
        _claim(config, options if recorded != options else None)
    # The other workers of a cluster write their checkpoints, logs and export into a temporary folder
    # (deleted at the end), as TensorFlow's multi-worker guide prescribes; only the chief writes --output.
    work_dir = config.output if chief else tempfile.mkdtemp(prefix="copycat-worker-")
    fileio.makedirs(work_dir)
    policy = keras.mixed_precision.global_policy()
    determinism = _set_op_determinism(True) if config.deterministic else None
    try:
        keras.utils.set_random_seed(config.seed)
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16" if tf.config.list_logical_devices("GPU")
                                                    else "mixed_bfloat16")
        metrics = _train(config, folders, records, num_classes, class_names, chunk, chunks, total_steps, strategy,
                         chief, work_dir, draw)
        if is_multi_worker(strategy):
            leave_together(strategy)
        return metrics
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)
        keras.mixed_precision.set_global_policy(policy)
        if determinism is False:
            _set_op_determinism(False)  # as the caller had it


def _epoch_draw(config: TrainConfig, folders, num_classes: int) -> EpochDraw | None:
    """--class_balance=resample or sqrt: which record is read how often in each epoch (None: each once)."""
    if config.class_balance not in ("resample", "sqrt"):
        return None
    draw = EpochDraw(read_labels([path for folder in folders for path in folder.shards]), config.seed,
                     power=0.5 if config.class_balance == "sqrt" else 0.0)
    if draw.labels.max() >= num_classes:
        raise CopycatError(f"--train={','.join(config.train)} holds label {draw.labels.max()} but says "
                           f"{num_classes} classes")
    return draw


def _claim(config: TrainConfig, new_options: dict | None) -> None:
    """The chief takes --output for this stage (refused if another stage's) and records new options."""
    inputs = [("--train", path) for path in config.train] + [("--val", config.val)]
    if config.init and config.init != "imagenet":
        inputs.append(("--init", config.init))
    claim_output(config.output, "train", inputs, clear=False)
    if new_options is not None:
        fileio.write_text_atomically(RunDir(config.output).run_options,
                                     json.dumps({"stage": "train", "options": new_options}, indent=2))


def _build(config: TrainConfig, num_classes: int, total_steps: int, strategy, work_dir: str):
    """The model and optimizer under the strategy, resumed from the chief's last checkpoint (every worker
    reads the chief's: the others' are temporary) or initialized from --init; and this worker's
    checkpoint manager."""
    with strategy.scope():
        model = build_model(config.model, num_classes, config.input_size, width=config.width, dropout=config.dropout)
        optimizer = keras.optimizers.SGD(learning_rate=paper_schedule(config.lr, total_steps), momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, random_states=_random_states(model))
        manager = tf.train.CheckpointManager(checkpoint, RunDir(work_dir).checkpoints, max_to_keep=2)
        latest = tf.train.latest_checkpoint(RunDir(config.output).checkpoints)
        if latest:
            checkpoint.restore(latest).expect_partial()
            log.info("resuming from %s (step %d)", latest, _step(optimizer))
        elif config.init:
            _initialize(model, config.init)
    return model, optimizer, manager


def _train(config: TrainConfig, folders, records: int, num_classes: int, class_names: list[str], chunk: int,
           chunks: int, total_steps: int, strategy, chief: bool, work_dir: str, draw: EpochDraw | None) -> dict:
    log.info("training %s on %d images (%d classes), %d steps of %d in %d replicas (%s)", config.model, records,
             num_classes, total_steps, config.batch_size, strategy.num_replicas_in_sync, type(strategy).__name__)
    model, optimizer, manager = _build(config, num_classes, total_steps, strategy, work_dir)
    done = _step(optimizer)
    initial_chunk = done // chunk
    multi_worker = is_multi_worker(strategy)
    if multi_worker:
        check_same_step(strategy, done)

    # The input is a function of the seed and the step: shuffled per epoch from (seed, epoch), augmented
    # from (seed, step), so a resumed run reads from step `done` on what an uninterrupted run reads there.
    augment = build_augmentation(config.augment, config.seed)

    def read(batch_size: int, workers: tuple[int, int] = (1, 0)) -> tf.data.Dataset:
        return lake_dataset(folders, config.input_size, batch_size, training=True, seed=config.seed, augment=augment,
                            deterministic=config.deterministic, start_step=done, records=records, draw=draw,
                            workers=workers)

    val_data = None
    if config.val:
        val_data = lake_dataset([open_folder(config.val, LABELED_IMAGE)], config.input_size, config.batch_size, training=False)
    started = time.time()
    history = {}
    if multi_worker and initial_chunk < chunks:
        history = fit_chunks(model, optimizer, strategy, cluster_input(strategy, config.batch_size, read, folders),
                             global_batch=config.batch_size, chunks=chunks, chunk=chunk, initial_chunk=initial_chunk,
                             manager=manager, resume_from=RunDir(config.output).checkpoints,
                             tensorboard=RunDir(work_dir).tensorboard, val_data=val_data, chief=chief,
                             verbose=config.verbose)
    elif initial_chunk < chunks:
        callbacks = [_SaveCheckpoint(manager, optimizer),
                     keras.callbacks.TensorBoard(RunDir(work_dir).tensorboard, update_freq="epoch")]
        history = model.fit(read(config.batch_size), epochs=chunks, steps_per_epoch=chunk, initial_epoch=initial_chunk,
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
    if draw is not None:
        metrics["class_balance"] = draw.summary(num_classes)
    for key, values in metrics["history"].items():
        metrics[f"final_{key}"] = values[-1]
    run = RunDir(work_dir)  # every worker saves (a distributed save may need them all); only the chief's is kept
    model.save(run.model)
    export_classifier(model, run.export)
    if chief:
        fileio.write_text_atomically(run.metrics, json.dumps(metrics, indent=2))
    return metrics
