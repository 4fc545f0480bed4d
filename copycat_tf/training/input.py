"""tf.data input from lake shards: parallel reads, parse, decode, resize, optional augmentation.

Images come out as float32 RGB pixels in 0..255 at ``input_size`` x ``input_size`` (the models
rescale them), labels as int64 class ids.

Before a folder is used, its shards are counted once (a fast pass that verifies every record's
checksums without parsing; shards in parallel) and the counts are checked against the folder's
manifest, so a truncated, emptied, bit-flipped, stray or missing shard stops training with one
LakeError naming the shard instead of a DataLossError mid-epoch or a wrong number of steps.
"""

import concurrent.futures
import math
import threading

import numpy as np
import tensorflow as tf

from copycat_tf.training.class_balance import EpochDraw
from tfrecords_schema import LABELED_IMAGE, LakeFolder, check_folder_counts, count_records
from tfrecords_schema.tfdata import parse_function

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BLOCK = 4096  # training records are shuffled within blocks of this many (as a shuffle buffer would)
BALANCED_SHUFFLE_BLOCK = 32768  # --class_balance=resample: up to a whole epoch at once, so copies spread out


_COUNTED: dict[tuple[str, int, int], int] = {}  # (shard, size, mtime) → records, so a folder is counted once
_COUNTED_LOCK = threading.Lock()


def _count_shard(path: str) -> int:
    stat = tf.io.gfile.stat(path)
    key = (path, stat.length, stat.mtime_nsec)
    with _COUNTED_LOCK:
        if key in _COUNTED:
            return _COUNTED[key]
    count = count_records(path)
    with _COUNTED_LOCK:
        _COUNTED[key] = count
    return count


def shard_record_counts(folder: LakeFolder) -> list[int]:
    """Records in each shard of ``folder``, counted from the files and checked against its manifest."""
    paths = list(folder.shards)
    if not paths:
        counts = []
    else:
        with concurrent.futures.ThreadPoolExecutor(min(8, len(paths))) as pool:
            counts = list(pool.map(_count_shard, paths))
    check_folder_counts(folder, counts)
    return counts


def record_count(folder: LakeFolder) -> int:
    """Records in a folder: counted from its shards, and refused (LakeError) where the manifest says otherwise."""
    return sum(shard_record_counts(folder))


def decode_resize(input_size: int):
    parse = parse_function(LABELED_IMAGE)

    def to_example(serialized):
        record = parse(serialized)
        image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
        image = tf.image.resize(image, (input_size, input_size), antialias=True)
        return tf.ensure_shape(image, (input_size, input_size, 3)), record["label"]

    return to_example


def lake_dataset(folders: list[LakeFolder], input_size: int, batch_size: int, training: bool, seed: int = 0,
                 augment=None, deterministic: bool = False, start_step: int = 0,
                 records: int | None = None, draw: EpochDraw | None = None,
                 workers: tuple[int, int] = (1, 0)) -> tf.data.Dataset:
    """Batches of (images, labels); for training shuffled, repeated forever, full batches only.

    Training input is read in whatever order the parallel readers finish (faster) unless
    ``deterministic``: then the batches are a function of ``seed`` alone. Epoch e reads the shards and
    shuffles the records in an order drawn from (seed, e), so the batches from ``start_step`` on (a
    resumed run) are those an uninterrupted run reads there; getting there reads, without decoding,
    at most one epoch of records. ``augment(images, step)`` draws its randomness from the step.
    With ``draw`` (``--class_balance=resample``) each epoch reads every record as many times as the
    epoch's balanced draw says (``draw.copies(e)``, records numbered in listed shard order) and shuffles
    the epoch in larger blocks, so the copies of a rare image are spread out.

    ``workers`` = (count, index) gives this worker of a multi-worker run its part of the input, and
    ``batch_size`` is then its local batch (the global batch / count). With at least as many shards as
    workers each worker reads its own shards (every count-th of the listed ones: by file); with fewer, each
    reads the whole stream an uninterrupted one-worker run reads and keeps every count-th record (by
    data; also when a worker's shards would hold no record), so together the workers' batches of step s
    hold the records of that run's global batch s.
    """
    ordered = deterministic or not training
    counts = [n for folder in folders for n in shard_record_counts(folder)]  # a damaged folder stops here
    shards = [path for folder in folders for path in folder.shards]
    files = tf.data.Dataset.from_tensor_slices(shards)
    if not training:
        dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(shards), 8),
                                   num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        count, part = workers
        by_file = splits_by_file(counts, count)
        mine = list(range(part, len(shards), count)) if by_file else list(range(len(shards)))
        records = records if records is not None else sum(counts)
        epoch_size = draw.epoch_size if draw is not None else records  # (of the whole stream: the shuffle block)
        if by_file:
            first_epoch, skip = _position(start_step * batch_size, _worker_epoch_sizes(counts, mine, draw))
        else:  # by data (or one worker): the one-worker stream, of which this worker keeps every count-th record
            first_epoch, skip = divmod(start_step * batch_size * count, max(1, epoch_size))

        read_epoch = _epoch_reader(shards, counts, mine, seed, draw, ordered, epoch_size)
        dataset = tf.data.Dataset.counter(first_epoch).flat_map(read_epoch).skip(skip)
        if count > 1 and not by_file:
            dataset = dataset.shard(count, part)
    dataset = dataset.map(decode_resize(input_size), num_parallel_calls=AUTOTUNE, deterministic=ordered)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if augment is not None:
        dataset = dataset.enumerate(start_step).map(lambda step, batch: (augment(batch[0], step), batch[1]),
                                                    num_parallel_calls=AUTOTUNE, deterministic=ordered)
    return dataset.prefetch(AUTOTUNE)


def _epoch_reader(shards: list[str], counts: list[int], mine: list[int], seed: int, draw: EpochDraw | None,
                  ordered: bool, epoch_size: int):
    """Epoch index → that epoch's serialized records from the shards numbered ``mine``: every record once
    (or, with ``draw``, as often as the epoch's draw says), in an order drawn from (seed, epoch)."""
    def balanced_epoch(index):  # every record as often as this epoch's draw says, then shuffled
        key = tf.stack([tf.constant(seed, tf.int64), index])
        firsts = tf.constant(np.cumsum([0] + counts[:-1]), tf.int64)  # record number of each shard's first
        order = tf.random.experimental.stateless_shuffle(tf.constant(mine, tf.int32), seed=key)
        copies = draw.copies_tensor(index)

        def numbered(position):
            first = tf.gather(firsts, position)
            return tf.data.TFRecordDataset(tf.gather(shards, position)).enumerate(first)

        stream = tf.data.Dataset.from_tensor_slices(order).interleave(
            numbered, cycle_length=min(len(mine), 8), num_parallel_calls=AUTOTUNE, deterministic=ordered)
        stream = stream.flat_map(lambda number, serialized: tf.data.Dataset.from_tensors(serialized).repeat(
            tf.gather(copies, number)))
        block = max(SHUFFLE_BLOCK, min(epoch_size, BALANCED_SHUFFLE_BLOCK))
        return stream.batch(block).enumerate().map(
            lambda block, serialized: tf.random.experimental.stateless_shuffle(
                serialized, seed=tf.random.experimental.stateless_fold_in(key, block))).unbatch()

    def epoch(index):  # stateless: the shard order and the shuffle of each block of records come from the key
        key = tf.stack([tf.constant(seed, tf.int64), index])
        order = tf.random.experimental.stateless_shuffle(tf.constant([shards[p] for p in mine]), seed=key)
        stream = tf.data.Dataset.from_tensor_slices(order).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(mine), 8), num_parallel_calls=AUTOTUNE,
            deterministic=ordered)
        return stream.batch(SHUFFLE_BLOCK).enumerate().map(
            lambda block, serialized: tf.random.experimental.stateless_shuffle(
                serialized, seed=tf.random.experimental.stateless_fold_in(key, block))).unbatch()

    return epoch if draw is None else balanced_epoch


def splits_by_file(counts: list[int], workers: int) -> bool:
    """Whether ``workers`` workers read the shards (of these record counts) by file: each its every
    workers-th shard, when every worker's part then holds records; otherwise each reads all and keeps its
    every workers-th record (by data)."""
    return workers > 1 and all(sum(counts[i::workers]) > 0 for i in range(workers)) and len(counts) >= workers


def _worker_epoch_sizes(counts: list[int], mine: list[int], draw: EpochDraw | None):
    """Records a worker reading the shards ``mine`` reads in epoch 0, 1, ... (the draw's copies of them)."""
    firsts = np.cumsum([0] + counts[:-1])
    numbers = np.concatenate([np.arange(firsts[p], firsts[p] + counts[p]) for p in mine] or [np.zeros(0, np.int64)])
    epoch = 0
    while True:
        yield int(draw.copies(epoch)[numbers].sum()) if draw is not None else len(numbers)
        epoch += 1


def _position(offset: int, sizes) -> tuple[int, int]:
    """(epoch, records into it) of record number ``offset`` of a stream of epochs of the given sizes."""
    for epoch, size in enumerate(sizes):  # (an epoch the draw leaves empty for this worker is passed over)
        if offset < size:
            return epoch, offset
        offset -= size
    raise AssertionError("unreachable: the sizes never end")


def steps_per_epoch(records: int, batch_size: int) -> int:
    return max(1, math.ceil(records / batch_size))
