"""Opening a lake folder as a stage input: manifest checked, record kind checked, shards listed and checked.

``open_folder`` does the cheap checks (no record is read): one complete shard set, as many shards as
the manifest lists, no shard empty where records are expected or holding bytes where none are, and
the manifest's own numbers agreeing with each other. It records how many records each shard must
hold (``shard_lengths``) so that every reader can check the shards it reads: ``read_records``,
Beam's ``lake_io.ReadRecords`` and the tf.data input of training (``check_folder_counts``).
"""

import dataclasses
import json
import posixpath
from typing import Sequence

from tfrecords_schema import fileio
from tfrecords_schema.errors import LakeError
from tfrecords_schema.kinds import RecordKind, kind_by_name
from tfrecords_schema.manifest import MANIFEST_NAME, RECORD_COUNT_KEY, Manifest, expected_records, read_manifest
from tfrecords_schema.shards import _SHARD_RE, check_shard_count, list_shards

TFDS_INFO = "dataset_info.json"
_RECORD_OVERHEAD = 16  # bytes around each TFRecord: length, its CRC, and the data CRC


@dataclasses.dataclass(frozen=True)
class LakeFolder:
    """A finished stage output that a later stage may read as records of ``kind``.

    ``shard_lengths`` (aligned with ``shards``) and ``records`` are what the folder says it holds:
    per shard where the manifest (or the folder's TFDS metadata) lists them, else only a total,
    else None.
    """

    path: str
    manifest: Manifest
    kind: RecordKind
    shards: tuple[str, ...]
    shard_lengths: tuple[int, ...] | None = None
    records: int | None = None


def _tfds_shard_lengths(path: str, shards: Sequence[str]) -> list[int] | None:
    """Records per shard from the folder's TFDS metadata (written beside the shards by every stage)."""
    info_path = fileio.join(path, TFDS_INFO)
    if not shards or not fileio.exists(info_path):
        return None
    match = _SHARD_RE.match(shards[0].rsplit("/", 1)[-1])
    try:
        info = json.loads(fileio.read_text(info_path))
        for split in info.get("splits", []):
            if split.get("name") == match["prefix"]:
                lengths = [int(n) for n in split.get("shardLengths", [])]
                return lengths if all(n >= 0 for n in lengths) else None
    except (ValueError, TypeError, AttributeError):
        return None  # the manifest is the contract; without usable metadata only its total is checked
    return None


def _check_layout(path: str, manifest: Manifest, shards: Sequence[str], lengths: list[int] | None,
                  total: int | None) -> None:
    where = fileio.join(path, MANIFEST_NAME)
    if lengths is not None:
        key = RECORD_COUNT_KEY.get(manifest.stage)
        if key in manifest.counts and sum(lengths) != manifest.counts[key]:
            raise LakeError(
                f"{path}: its shards hold {sum(lengths)} records by its TFDS metadata ({TFDS_INFO}) but "
                f"{where} says counts.{key} = {manifest.counts[key]}; rerun the stage that wrote it"
            )
        if len(shards) != len(lengths):
            found = f"{len(shards)} shard files" if shards else "no shard file"
            raise LakeError(
                f"{path} holds {found}, but {where} lists {len(lengths)} shards ({sum(lengths)} records): "
                "shards are missing or come from another run; rerun the stage that wrote it"
            )
        import tensorflow as tf

        for shard, expected in zip(shards, lengths):
            size = tf.io.gfile.stat(shard).length
            if expected and not size:
                raise LakeError(
                    f"shard {shard} is empty (0 bytes), but {where} says it holds {expected} records: "
                    "restore it or rerun the stage that wrote its folder"
                )
            if not expected and size:
                raise LakeError(
                    f"shard {shard} holds {size} bytes, but {where} says it holds no records: "
                    "it was replaced after it was written; rerun the stage that wrote its folder"
                )
            if size < expected * _RECORD_OVERHEAD:
                raise LakeError(
                    f"shard {shard} is truncated ({size} bytes cannot hold the {expected} records {where} "
                    "says it holds); restore it or rerun the stage that wrote its folder"
                )
    elif total and not shards:
        raise LakeError(
            f"{path} holds no shard files, but {where} says it holds {total} records: the shards were "
            "deleted or moved; rerun the stage that wrote it"
        )


def open_folder(path: str, kind: RecordKind) -> LakeFolder:
    """Check that ``path`` is a finished stage output holding records readable as ``kind``."""
    manifest = read_manifest(path)
    written = kind_by_name(manifest.record_kind)
    if not written.can_be_read_as(kind):
        raise LakeError(
            f"{path} holds {written.name} records (written by {manifest.stage}), but {kind.name} records "
            "are needed here; point this stage at the right folder"
        )
    shards = tuple(list_shards(path))
    lengths = manifest.extra.get("shard_lengths")
    if lengths is None:
        lengths = _tfds_shard_lengths(path, shards)
    total = sum(lengths) if lengths is not None else expected_records(manifest)
    _check_layout(str(path), manifest, shards, lengths, total)
    return LakeFolder(path=str(path), manifest=manifest, kind=kind, shards=shards,
                      shard_lengths=tuple(lengths) if lengths is not None else None, records=total)


def check_folder_counts(folder: LakeFolder, counts: Sequence[int]) -> None:
    """Refuse a folder whose counted records per shard (aligned with ``folder.shards``) are not what it says."""
    if folder.shard_lengths is not None:
        for path, found, expected in zip(folder.shards, counts, folder.shard_lengths):
            check_shard_count(path, found, expected)
    elif folder.records is not None and sum(counts) != folder.records:
        raise LakeError(
            f"{folder.path} holds {sum(counts)} records in {len(counts)} shards, but its manifest says "
            f"{folder.records}: shards were truncated, emptied or replaced; rerun the stage that wrote it"
        )


def folder_of(shard: str) -> str:
    """The folder a shard file is in (local path or URL)."""
    return posixpath.dirname(str(shard))


def shard_expectations(shards: Sequence[str], kind: RecordKind) -> tuple[dict[str, int], dict[str, int]]:
    """For shard files of finished folders: the records each must hold, and the totals of folders that give only one.

    Shards of a folder without a manifest get no expectation (only damage is caught there). A total
    applies only when ``shards`` holds every shard of its folder.
    """
    per_shard: dict[str, int] = {}
    totals: dict[str, int] = {}
    by_folder: dict[str, set[str]] = {}
    for shard in shards:
        by_folder.setdefault(folder_of(shard), set()).add(str(shard))
    for folder, mine in by_folder.items():
        if not fileio.exists(fileio.join(folder, MANIFEST_NAME)):
            continue
        lake = open_folder(folder, kind)
        if lake.shard_lengths is not None:
            per_shard.update({path: n for path, n in zip(lake.shards, lake.shard_lengths) if path in mine})
        elif lake.records is not None and mine == set(lake.shards):
            totals[folder] = lake.records
    return per_shard, totals
