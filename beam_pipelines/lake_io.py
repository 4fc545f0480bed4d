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

from tfrecords_schema import (MANIFEST_NAME, Manifest, RecordKind, decode, encode, fileio, kind_by_name, shard_filename,
                              shard_for, write_manifest)
from tfrecords_schema.tfds_features import write_tfds_metadata

SHARD_PREFIX = "images"


# ---------------------------------------------------------------------------------------------
# Reading


class ReadRecords(beam.PTransform):
    """Decoded, validated records of ``kind`` from a list of shard files, shard by shard in parallel.

    Shards of finished folders are checked while they are read: a shard that TensorFlow cannot read
    (torn or bit-flipped) fails the job with a LakeError naming it, and so does one whose record count
    is not what its folder's manifest says (per shard; or per folder where the manifest gives only a
    total). The expectations are looked up once, when the pipeline is built.
    """

    def __init__(self, shards: Sequence[str], kind: RecordKind):
        super().__init__()
        self._shards = list(shards)
        self._kind = kind

    def expand(self, pipeline):
        from tfrecords_schema.lake import shard_expectations

        per_shard, totals = shard_expectations(self._shards, self._kind)
        read = (
            pipeline
            | "Shards" >> beam.Create(self._shards)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadShard" >> beam.ParDo(_ReadCheckedShard(self._kind, per_shard)).with_outputs(
                _SHARD_COUNTS, main="records")
        )
        if totals:
            (
                read[_SHARD_COUNTS]
                | "FolderCounts" >> beam.CombinePerKey(sum)
                | "CheckFolderCounts" >> beam.Map(_check_folder_total, totals)
            )
        return read.records


# ---------------------------------------------------------------------------------------------
# Writing


def write_shard_file(output: str, kind: RecordKind, index: int, num_shards: int, records: list) -> dict:
    """Write one shard (records sorted by id) under a temporary name, then rename; returns its stats."""
    records = sorted(records, key=lambda r: (r["id"], r["source"], r["source_key"]))
    return write_encoded_shard_file(output, index, num_shards, [encode(kind, record) for record in records])


def write_encoded_shard_file(output: str, index: int, num_shards: int, examples: list[bytes]) -> dict:
    """Write one shard of already encoded records (in the order given) under a temporary name, then rename."""
    import tensorflow as tf

    fileio.makedirs(output)
    path = fileio.join(output, shard_filename(SHARD_PREFIX, index, num_shards))
    temporary = path + ".tmp"
    with tf.io.TFRecordWriter(temporary) as writer:
        for example in examples:
            writer.write(example)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    logging.info("wrote shard %d of %d (%d records) in %s", index + 1, num_shards, len(examples), output)
    return {"index": index, "records": len(examples), "bytes": tf.io.gfile.stat(path).length}


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


SHARD_MB = 128.0


def bytes_of_records(count: float, total_bytes: float, total_records: int) -> float:
    """About how many bytes ``count`` records take, at the average size of a folder's ``total_records`` records of
    ``total_bytes`` (what a stage writing a subset or replicas of its input sizes its shards by)."""
    return count * total_bytes / max(total_records, 1)


def shards_for(total_bytes: float, requested: int = 0, shard_mb: float | None = None) -> int:
    """The lake's one shard policy: the shards a stage writes for an output of about ``total_bytes`` — the
    ``--num_shards`` the user asked for, else one per ``shard_mb`` MiB (default ``SHARD_MB``; at least one).
    Stages that know their output's size only inside the job (build_npdd) call it there; prepare_problem
    writes one shard per part of the problem it read."""
    if requested:
        return int(requested)
    return max(1, math.ceil(total_bytes / ((SHARD_MB if shard_mb is None else shard_mb) * 2**20)))


# ---------------------------------------------------------------------------------------------
# Stage bookkeeping


STAGE_FILE_PATTERNS = (MANIFEST_NAME, f"{SHARD_PREFIX}-?????-of-?????.tfrecord", f"{SHARD_PREFIX}-?????-of-?????.tfrecord.tmp",
                       "dataset_info.json", "features.json", "_stats.json")


def claim_stage_output(output: str, stage: str, inputs: Sequence[tuple[str, str]] = (),
                       extra_patterns: Sequence[str] = (), clear: bool = True) -> None:
    """Own ``output`` for ``stage`` (refusing user folders and inputs), then clear what an earlier run of it left.

    The manifest goes first, so a crash never leaves a folder that looks finished.
    """
    from copycat_tf.stage_output import claim_output

    claim_output(output, stage, inputs, [*STAGE_FILE_PATTERNS, *extra_patterns], clear=clear)


def clear_stage_files(output: str, extra_patterns: Sequence[str] = ()) -> None:
    """Remove what an earlier run of the stage that owns ``output`` left (after ``claim_stage_output``)."""
    from copycat_tf.stage_output import clear_own_files

    clear_own_files(output, [*STAGE_FILE_PATTERNS, *extra_patterns])


STATS_NAME = "_stats.json"


def write_stats(output: str, stats: dict) -> None:
    fileio.write_text_atomically(fileio.join(output, STATS_NAME), json.dumps(stats, sort_keys=True))


def read_and_remove_stats(output: str) -> dict:
    path = fileio.join(output, STATS_NAME)
    stats = json.loads(fileio.read_text(path))
    FileSystems.delete([path])
    return stats


def shard_lengths(shard_stats: Sequence[dict]) -> list[int]:
    """The records of each shard, in shard order, from the job's per-shard stats (``WriteShards``' outputs)."""
    return [s["records"] for s in sorted(shard_stats, key=lambda s: s["index"])]


def finish_folder(output: str, manifest: Manifest, shard_stats: Sequence[dict],
                  class_names: Sequence[str] | None = None) -> Manifest:
    """How every stage ends once its job has run: TFDS metadata describing the shards the job wrote (so
    ``tfds.builder_from_directory`` reads the folder without counting), then the manifest, last, because its
    presence marks a finished folder."""
    ordered = sorted(shard_stats, key=lambda s: s["index"])
    write_tfds_metadata(output, kind_by_name(manifest.record_kind), list(class_names) if class_names else None,
                        shard_lengths={SHARD_PREFIX: shard_lengths(ordered)},
                        num_bytes={SHARD_PREFIX: sum(s["bytes"] for s in ordered)})
    write_manifest(output, manifest)
    return manifest


# ---------------------------------------------------------------------------------------------
# Checked reading (helpers of ReadRecords)

_SHARD_COUNTS = "shard_counts"


class _ReadCheckedShard(beam.DoFn):
    """One shard file → its decoded records; then (its folder, its record count) on the side output."""

    def __init__(self, kind: RecordKind, expected: dict):
        self._kind = kind
        self._expected = expected

    def process(self, path):
        from tfrecords_schema.lake import folder_of
        from tfrecords_schema.shards import check_shard_count, iterate_shard

        count = 0
        for serialized in iterate_shard(path):
            count += 1
            yield decode(self._kind, serialized)
        check_shard_count(path, count, self._expected.get(path))
        yield beam.pvalue.TaggedOutput(_SHARD_COUNTS, (folder_of(path), count))


def _check_folder_total(element, totals: dict) -> None:
    from tfrecords_schema.errors import LakeError

    folder, found = element
    expected = totals.get(folder)
    if expected is not None and found != expected:
        raise LakeError(
            f"{folder} holds {found} records, but its manifest says {expected}: shards were truncated, "
            "emptied or replaced after they were written; rerun the stage that wrote it"
        )
