"""Shard naming, deterministic shard assignment, and a small in-process shard writer/reader.

Shards are named ``PREFIX-XXXXX-of-YYYYY.tfrecord``. A record's shard is chosen from a hash of
its key (the content id), so the same inputs give the same shards on any runner and in any order.
The Beam pipelines write shards with the same names and assignment; the in-process writer here is
for small folders (tests, small problems) and streams records without holding them in memory.

Reading is checked: a folder holds one complete shard set, each shard must hold the number of
records its folder's manifest says (a truncated, emptied or replaced shard is caught even when
TensorFlow's reader ends it silently at a record boundary), and TensorFlow's DataLossError for a
torn or bit-flipped record becomes a LakeError naming the shard.
"""

import re
from typing import TYPE_CHECKING, Iterable, Iterator

from tfrecords_schema import fileio
from tfrecords_schema.errors import LakeError
from tfrecords_schema.hashing import stable_bucket
from tfrecords_schema.kinds import RecordKind
from tfrecords_schema.manifest import MANIFEST_NAME
from tfrecords_schema.records import decode, encode

if TYPE_CHECKING:
    from tfrecords_schema.lake import LakeFolder

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
    """The shards of ``folder`` (optionally only one prefix), sorted; refuses an incomplete set or a second set."""
    paths = fileio.glob(fileio.join(folder, f"{prefix or '*'}-*-of-*{SUFFIX}"))
    by_prefix: dict[tuple[str, int], set[int]] = {}
    for path in paths:
        match = _SHARD_RE.match(path.rsplit("/", 1)[-1])
        if match:
            key = (match["prefix"], int(match["count"]))
            by_prefix.setdefault(key, set()).add(int(match["index"]))
    if len(by_prefix) > 1:
        sets = ", ".join(f"{name}-*-of-{count:05d} ({len(indices)} files)" for (name, count), indices in sorted(by_prefix.items()))
        raise LakeError(
            f"{folder} holds more than one shard set: {sets}; one is a stray from another run or another "
            "folder: remove it, or rerun the stage that wrote this folder"
        )
    for (name, count), indices in by_prefix.items():
        if len(indices) != count:
            missing = sorted(set(range(count)) - indices)[:5]
            raise LakeError(
                f"{folder}: shard set {name}-*-of-{count:05d} is incomplete (missing index {missing}...); "
                "the stage that wrote it did not finish: rerun it"
            )
    return [p for p in paths if _SHARD_RE.match(p.rsplit("/", 1)[-1])]


def _tf_error_text(error: Exception) -> str:
    """TensorFlow's error message without its op and function-node decorations."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return " ".join(text.split()) or type(error).__name__


def shard_read_error(path: str, error: Exception) -> LakeError:
    """The LakeError for a shard TensorFlow cannot read (DataLossError: torn or altered bytes)."""
    import tensorflow as tf

    if isinstance(error, tf.errors.DataLossError):
        return LakeError(
            f"shard {path} is damaged ({_tf_error_text(error)}): it was truncated or altered after it was "
            "written; restore it or rerun the stage that wrote its folder"
        )
    return LakeError(f"shard {path} cannot be read ({_tf_error_text(error)}); rerun the stage that wrote its folder")


def iterate_shard(path: str) -> Iterator[bytes]:
    """The serialized records of one shard file; damage ends in a LakeError naming the shard."""
    import tensorflow as tf

    try:
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield serialized
    except tf.errors.OpError as error:
        raise shard_read_error(path, error) from None


def count_records(path: str) -> int:
    """The number of records in one shard file, every record's checksums verified (a full read, no parsing)."""
    import numpy as np
    import tensorflow as tf

    try:
        return int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1))
    except tf.errors.OpError as error:
        raise shard_read_error(path, error) from None


def check_shard_count(path: str, found: int, expected: int | None) -> None:
    """Refuse a shard whose record count is not the one its folder's manifest gives."""
    if expected is None or found == expected:
        return
    why = ("it was truncated or emptied after it was written" if found < expected
           else "it was replaced or appended to after it was written")
    raise LakeError(
        f"shard {path} holds {found} records, but its folder's manifest says {expected}: {why}; "
        "restore it or rerun the stage that wrote its folder"
    )


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


def read_records(folder: "str | LakeFolder", kind: RecordKind, prefix: str | None = None) -> Iterator[dict]:
    """Decoded, validated records of every shard in ``folder``, shard by shard.

    A finished folder (one with a manifest) is opened and checked first, and each shard is read
    whole and its record count checked before any of its records is handed out; when the manifest
    gives only a total, every shard is counted first. A damaged folder ends in one LakeError naming
    the shard (or the folder), never in a silently short read.
    """
    from tfrecords_schema.lake import LakeFolder, check_folder_counts, open_folder

    if isinstance(folder, LakeFolder):
        lake = folder
    elif prefix is None and fileio.exists(fileio.join(folder, MANIFEST_NAME)):
        lake = open_folder(folder, kind)
    else:
        lake = None
    paths = list(lake.shards) if lake is not None else list_shards(folder, prefix)
    lengths = lake.shard_lengths if lake is not None else None
    if lake is not None and lengths is None and lake.records is not None:
        check_folder_counts(lake, [count_records(path) for path in paths])
    for index, path in enumerate(paths):
        records = list(iterate_shard(path))
        check_shard_count(path, len(records), lengths[index] if lengths is not None else None)
        for serialized in records:
            yield decode(kind, serialized)
