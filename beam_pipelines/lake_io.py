"""Reading and writing lake folders from Beam: shard readers, the sharded writer, stage bookkeeping.

Shards are read with TensorFlow's TFRecord reader, one shard per work item (Beam's own TFRecord
source checksums in pure Python when no crc32c library is installed, far too slow for images).
Shards are written by hashed id and sorted by id inside each shard, so the same records give the
same bytes on every runner. Each stage writes a small stats file from inside the job; the launching
process reads it once the job has finished and writes the manifest and TFDS metadata from it.
"""

import json
import logging
import math
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tfrecords_schema import RecordKind, decode, encode, fileio, shard_filename, shard_for

SHARD_PREFIX = "images"


# ---------------------------------------------------------------------------------------------
# Reading


class ReadRecords(beam.PTransform):
    """Decoded, validated records of ``kind`` from a list of shard files, shard by shard in parallel."""

    def __init__(self, shards: Sequence[str], kind: RecordKind):
        super().__init__()
        self._shards = list(shards)
        self._kind = kind

    def expand(self, pipeline):
        kind = self._kind

        def read_shard(path):
            import tensorflow as tf

            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                yield decode(kind, serialized)

        return (
            pipeline
            | "Shards" >> beam.Create(self._shards)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadShard" >> beam.FlatMap(read_shard)
        )


# ---------------------------------------------------------------------------------------------
# Writing


def write_shard_file(output: str, kind: RecordKind, index: int, num_shards: int, records: list) -> dict:
    """Write one shard (records sorted by id) under a temporary name, then rename; returns its stats."""
    import tensorflow as tf

    records = sorted(records, key=lambda r: (r["id"], r["source"], r["source_key"]))
    fileio.makedirs(output)
    path = fileio.join(output, shard_filename(SHARD_PREFIX, index, num_shards))
    temporary = path + ".tmp"
    with tf.io.TFRecordWriter(temporary) as writer:
        for record in records:
            writer.write(encode(kind, record))
    tf.io.gfile.rename(temporary, path, overwrite=True)
    logging.info("wrote shard %d of %d (%d records) in %s", index + 1, num_shards, len(records), output)
    return {"index": index, "records": len(records), "bytes": tf.io.gfile.stat(path).length}


def shard_slots(pipeline, num_shards, label: str = "Slots"):
    """(index, None) for every shard index, so that empty shards are written too."""
    return (
        pipeline
        | f"{label}Seed" >> beam.Create([None])
        | label >> beam.FlatMap(lambda _, n: [(i, None) for i in range(n)], num_shards)
    )


class WriteShards(beam.PTransform):
    """Records → ``images-XXXXX-of-YYYYY.tfrecord`` by hashed id; outputs one stats dict per shard."""

    def __init__(self, output: str, kind: RecordKind, num_shards: int):
        super().__init__()
        self._output = output
        self._kind = kind
        self._num_shards = num_shards

    def expand(self, records):
        output, kind, n = self._output, self._kind, self._num_shards

        def write(element):
            index, grouped = element
            return write_shard_file(output, kind, index, n, [r for r in grouped if r is not None])

        keyed = records | "ByShard" >> beam.Map(lambda r: (shard_for(r["id"], n), r))
        slots = records.pipeline | "One" >> beam.Create([(i, None) for i in range(n)])
        return (keyed, slots) | "WithSlots" >> beam.Flatten() | "GroupShards" >> beam.GroupByKey() | "Write" >> beam.Map(write)


def total_bytes(paths: Sequence[str]) -> int:
    import tensorflow as tf

    return sum(tf.io.gfile.stat(path).length for path in paths)


def shard_count(records: int, bytes_per_record: float, shard_mb: float = 128.0) -> int:
    """Shards for a folder of this size (at least one)."""
    return max(1, math.ceil(records * bytes_per_record / (shard_mb * 2**20)))


# ---------------------------------------------------------------------------------------------
# Stage bookkeeping


def clear_stage_output(output: str, extra_patterns: Sequence[str] = ()) -> None:
    """Remove what an earlier run left, manifest first, so a crash never leaves a mixed folder."""
    patterns = ["manifest.json", f"{SHARD_PREFIX}-*", "dataset_info.json", "features.json", "_stats.json",
                *extra_patterns]
    for pattern in patterns:
        matched = FileSystems.match([fileio.join(output, pattern)])[0].metadata_list
        if matched:
            FileSystems.delete([m.path for m in matched])


STATS_NAME = "_stats.json"


def write_stats(output: str, stats: dict) -> None:
    fileio.write_text_atomically(fileio.join(output, STATS_NAME), json.dumps(stats, sort_keys=True))


def read_and_remove_stats(output: str) -> dict:
    path = fileio.join(output, STATS_NAME)
    stats = json.loads(fileio.read_text(path))
    FileSystems.delete([path])
    return stats
