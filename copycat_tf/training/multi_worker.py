"""Training on several workers (MultiWorkerMirroredStrategy): the step loop that Keras 3's ``fit`` cannot run.

Keras 3's ``fit`` does not drive MultiWorkerMirroredStrategy (keras-team/keras#20585: its input
adapter fails on the strategy's per-replica values), so a multi-worker run trains with this loop
instead: the same model, optimizer, loss and schedule, one ``strategy.run`` per step, the loss
averaged over the global batch, the gradients summed over the workers by the optimizer. It keeps the
single-machine run's contract: chunks of ``chunk`` steps, a checkpoint after each, ``loss`` and
``accuracy`` per chunk (and ``val_*`` on the chief), TensorBoard scalars under ``tensorboard/train``.

Every worker restores from the chief's checkpoints (so ``--output`` must be a path every worker
sees, as TensorFlow's multi-worker guide requires), and the workers check, before the first step,
that they restored the same step: a worker that saw another folder stops the run with one message.
"""

import contextlib
import logging

import keras
import numpy as np
import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.training.input import shard_record_counts, splits_by_file

log = logging.getLogger("copycat.train")


def worker_layout(strategy) -> tuple[int, int]:
    """(workers in the cluster, this worker's index among them), the chief first when there is one."""
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    tasks = [("chief", i) for i in range(len(spec.get("chief", [])))]
    tasks += [("worker", i) for i in range(len(spec.get("worker", [])))]
    return len(tasks), tasks.index((resolver.task_type, int(resolver.task_id)))


def cluster_input(strategy, global_batch: int, read, folders) -> tf.distribute.DistributedDataset:
    """This worker's part of the training input, as the strategy hands it to its replicas.

    ``read(batch_size, workers)`` gives the lake input of one worker of ``workers`` = (count, index) in
    batches of its share of the global batch (see ``lake_dataset``: by file, or by data when a worker
    would get no shard with records); each replica of the worker then takes its own batches."""
    workers = worker_layout(strategy)
    local = global_batch // workers[0]
    per_replica = global_batch // strategy.num_replicas_in_sync
    counts = [n for folder in folders for n in shard_record_counts(folder)]
    log.info("worker %d of %d reads its part of --train by %s", workers[1] + 1, workers[0],
             "file" if splits_by_file(counts, workers[0]) else "data")

    def worker_input(context: tf.distribute.InputContext) -> tf.data.Dataset:
        data = read(local, workers)
        return data if per_replica == local else data.rebatch(per_replica)

    return strategy.distribute_datasets_from_function(worker_input)


def check_same_step(strategy, step: int) -> None:
    """Stop unless every worker restored the same optimizer step (they read the same --output).

    All-reduce offers only sums and means, so the workers compare the mean step and the mean squared
    step: both agree with this worker's step only when every worker restored it."""
    value = tf.constant([step, step * step], tf.float64)
    with peers_watched(None):
        mean = strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(lambda: tf.identity(value)),
                               axis=None).numpy()
    if abs(mean[0] - step) > 1e-6 or abs(mean[1] - mean[0] ** 2) > 1e-6 * max(1.0, mean[1]):
        raise CopycatError(f"the workers resumed from different steps (this one from {step}, on average "
                           f"{mean[0]:g}): --output must be one folder every worker sees (a shared file system or "
                           "a bucket), the same on every worker")


@contextlib.contextmanager
def peers_watched(checkpoints: str | None):
    """Turn a peer's death (the collective ops fail once its heartbeats stop) into one message saying how to
    resume: restart every worker with the same command, which resumes from the chief's last checkpoint."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError) as error:
        reason = next((line.strip() for line in str(error).splitlines() if "unhealthy" in line or "task" in line),
                      str(error).splitlines()[0] if str(error) else type(error).__name__)
        latest = tf.train.latest_checkpoint(checkpoints) if checkpoints else None
        where = f"the last checkpoint is {latest}" if latest else "no checkpoint was written yet"
        raise CopycatError(f"a worker of the cluster stopped ({reason}); {where}: restart every worker with the same "
                           "command and TF_CONFIG to resume from it") from None


def leave_together(strategy, timeout_s: float = 3600.0) -> None:
    """Every worker waits here, once its part of the run is written, until all have arrived. A worker that ended
    first would stop sending heartbeats while the chief still writes its export, and the coordination service
    would take that for a failure once --peer_timeout passes. The first worker hosts the service, so it leaves
    last: once each other worker has said that the barrier let it through. A peer that never arrives costs a
    warning, not the run."""
    from tensorflow.python.eager import context  # TensorFlow's barrier and key-value store have no public name

    service = context.context()
    if service.coordination_service is None:
        return
    workers, index = worker_layout(strategy)
    try:
        service.wait_at_barrier("copycat-train-finished", int(timeout_s * 1000))
        if index:
            service.set_config_key_value(f"copycat-train-left/{index}", "1")
        else:
            for other in range(1, workers):
                service.get_config_key_value(f"copycat-train-left/{other}", 60_000)
    except tf.errors.OpError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log.warning("not every worker reached the end of the run (%s)", reason)
        return
    log.info("all %d workers finished", workers)


def _counts(labels, probabilities):
    predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int64)), tf.float32))


def _validate(val_step, val_data: tf.data.Dataset) -> dict[str, float]:
    """Loss and accuracy over the whole --val folder (on the chief, with the weights as they are)."""
    total, right, seen = 0.0, 0.0, 0
    for images, labels in val_data:
        batch_loss, batch_right, batch_seen = val_step(images, labels)
        total, right, seen = total + float(batch_loss), right + float(batch_right), seen + int(batch_seen)
    return {"val_loss": total / max(1, seen), "val_accuracy": right / max(1, seen)}


def fit_chunks(model: keras.Model, optimizer, strategy, dataset: tf.distribute.DistributedDataset, *, global_batch: int,
               chunks: int, chunk: int, initial_chunk: int, manager: tf.train.CheckpointManager, resume_from: str,
               tensorboard: str,
               val_data: tf.data.Dataset | None, chief: bool, verbose: int) -> dict[str, list[float]]:
    """Train chunks ``initial_chunk`` .. ``chunks - 1`` of ``chunk`` steps; returns the history, as ``fit`` does.
    ``manager`` saves this worker's checkpoints; ``resume_from`` is the chief's folder of them."""

    stepper = model.optimizer  # under mixed_float16, compile wrapped the optimizer in a LossScaleOptimizer

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            per_image = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.nn.compute_average_loss(tf.cast(per_image, tf.float32), global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n([tf.cast(x, tf.float32) for x in model.losses]))
            scaled = stepper.scale_loss(loss)  # the loss itself unless a loss scale guards float16 gradients
        gradients = tape.gradient(scaled, model.trainable_variables)
        stepper.apply_gradients(zip(gradients, model.trainable_variables))  # (unscaled there)
        return loss, _counts(labels, probabilities)

    @tf.function
    def train_step(iterator):
        loss, correct = strategy.run(replica_step, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    @tf.function
    def val_step(images, labels):
        probabilities = model(images, training=False)
        per_image = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        return tf.reduce_sum(tf.cast(per_image, tf.float32)), _counts(labels, probabilities), tf.shape(labels)[0]

    history: dict[str, list[float]] = {}
    writer = tf.summary.create_file_writer(tensorboard + "/train")
    iterator = iter(dataset)
    for number in range(initial_chunk, chunks):
        shown = chief and verbose == 1
        bar = keras.utils.Progbar(chunk, verbose=1) if shown else None
        losses, correct = [], 0.0
        for step in range(chunk):
            with peers_watched(resume_from):
                loss, right = train_step(iterator)
            losses.append(float(loss))
            correct += float(right)
            if bar is not None:
                bar.update(step + 1, [("loss", losses[-1])])
        logs = {"loss": float(np.mean(losses)), "accuracy": correct / (chunk * global_batch)}
        if val_data is not None and chief:
            logs.update(_validate(val_step, val_data))
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        with writer.as_default():
            for key, value in logs.items():
                if not key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key}", value, step=number)
        manager.save(checkpoint_number=int(keras.ops.convert_to_numpy(optimizer.iterations)))
        if chief and verbose:
            log.info("chunk %d/%d: %s", number + 1, chunks, ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
    writer.close()
    return history
