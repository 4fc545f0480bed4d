"""tf.data input from lake shards: parallel reads, parse, decode, resize, optional augmentation.

Images come out as float32 RGB pixels in 0..255 at ``input_size`` x ``input_size`` (the models
rescale them), labels as int64 class ids.
"""

import math

import tensorflow as tf

from tfrecords_schema import LABELED_IMAGE, LakeFolder
from tfrecords_schema.tfdata import parse_function

AUTOTUNE = tf.data.AUTOTUNE


def record_count(folder: LakeFolder) -> int:
    """Records in a folder, from its manifest (shard lengths where written, else its counts)."""
    extra, counts = folder.manifest.extra, folder.manifest.counts
    if "shard_lengths" in extra:
        return int(sum(extra["shard_lengths"]))
    for key in ("records", "kept", "labeled"):
        if key in counts:
            return int(counts[key])
    return sum(1 for path in folder.shards for _ in tf.data.TFRecordDataset(path))


def decode_resize(input_size: int):
    parse = parse_function(LABELED_IMAGE)

    def to_example(serialized):
        record = parse(serialized)
        image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
        image = tf.image.resize(image, (input_size, input_size), antialias=True)
        return tf.ensure_shape(image, (input_size, input_size, 3)), record["label"]

    return to_example


def lake_dataset(folders: list[LakeFolder], input_size: int, batch_size: int, training: bool, seed: int = 0,
                 augment=None, deterministic: bool = False) -> tf.data.Dataset:
    """Batches of (images, labels); for training shuffled, repeated forever, full batches only.

    Training input is read in whatever order the parallel readers finish (faster) unless
    ``deterministic``: then the same seed gives the same batches, run after run.
    """
    ordered = deterministic or not training
    shards = [path for folder in folders for path in folder.shards]
    dataset = tf.data.Dataset.from_tensor_slices(shards)
    if training:
        dataset = dataset.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(shards), 8),
                                 num_parallel_calls=AUTOTUNE, deterministic=ordered)
    if training:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(decode_resize(input_size), num_parallel_calls=AUTOTUNE, deterministic=ordered)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if augment is not None:
        dataset = dataset.map(lambda images, labels: (augment(images, training=True), labels), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def steps_per_epoch(records: int, batch_size: int) -> int:
    return max(1, math.ceil(records / batch_size))
