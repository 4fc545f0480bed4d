"""Shard naming, deterministic shard assignment, and a small in-process shard writer/reader.

Shards are named ``PREFIX-XXXXX-of-YYYYY.tfrecord``. A record's shard is chosen from a hash of
its key (the content id), so the same inputs give the same shards on any runner and in any order.
The Beam pipelines write shards with the same names and assignment; the in-process writer here is
for small folders (tests, small problems) and streams records without holding them in memory.
"""

import re
from typing import Iterable, Iterator

from tfrecords_schema import fileio
from tfrecords_schema.errors import LakeError
from tfrecords_schema.hashing import stable_bucket
from tfrecords_schema.kinds import RecordKind
from tfrecords_schema.records import decode, encode

SUFFIX = ".tfrecord"
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


def shard_filename(prefix: str, index: int, num_shards: int) -> str:
    """``PREFIX-XXXXX-of-YYYYY.tfrecord`` for shard ``index`` of ``num_shards``."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} is outside 0..{num_shards - 1}")
    return f"{prefix}-{index:05d}-of-{num_shards:05d}{SUFFIX}"


def shard_for(key: str, num_shards: int) -> int:
    """The shard a record with this key goes to."""
    return stable_bucket(key, num_shards)


def list_shards(folder: str, prefix: str | None = None) -> list[str]:
    """Every shard in ``folder`` (optionally only one prefix), sorted; refuses an incomplete set."""
    paths = fileio.glob(fileio.join(folder, f"{prefix or '*'}-*-of-*{SUFFIX}"))
    by_prefix: dict[tuple[str, int], set[int]] = {}
    for path in paths:
        match = _SHARD_RE.match(path.rsplit("/", 1)[-1])
        if match:
            key = (match["prefix"], int(match["count"]))
            by_prefix.setdefault(key, set()).add(int(match["index"]))
    for (name, count), indices in by_prefix.items():
        if len(indices) != count:
            missing = sorted(set(range(count)) - indices)[:5]
            raise LakeError(
                f"{folder}: shard set {name}-*-of-{count:05d} is incomplete (missing index {missing}...); "
                "the stage that wrote it did not finish: rerun it"
            )
    return [p for p in paths if _SHARD_RE.match(p.rsplit("/", 1)[-1])]


def write_shards(
    folder: str, kind: RecordKind, records: Iterable[dict], num_shards: int, prefix: str = "images"
) -> int:
    """Validate, encode and write records into ``num_shards`` shards by content id; returns the count."""
    import tensorflow as tf

    fileio.makedirs(folder)
    writers = [
        tf.io.TFRecordWriter(fileio.join(folder, shard_filename(prefix, i, num_shards)))
        for i in range(num_shards)
    ]
    count = 0
    try:
        for record in records:
            serialized = encode(kind, record)
            writers[shard_for(record["id"], num_shards)].write(serialized)
            count += 1
    finally:
        for writer in writers:
            writer.close()
    return count


def read_records(folder: str, kind: RecordKind, prefix: str | None = None) -> Iterator[dict]:
    """Decoded, validated records of every shard in ``folder``, shard by shard."""
    import tensorflow as tf

    for path in list_shards(folder, prefix):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield decode(kind, serialized)
