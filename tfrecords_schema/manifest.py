"""``manifest.json``: what every stage writes beside its output so later stages can trust it.

A manifest records the lake schema version, the stage that wrote the folder, the record kind of
its shards, the options the stage ran with, the manifests of its inputs (so a folder carries its
whole lineage), counts, and stage-specific facts (``extra``: class names, label histogram, ...).
Reading a folder written with another schema version stops with one error naming both versions.
Every manifest is checked against the layout below when it is read (and when it is written), so
a hand-edited or damaged manifest ends in one ManifestError naming the key, never in a stray
AttributeError or a silently wrong record count later on.
"""

import dataclasses
import datetime
import json
from typing import Any

from tfrecords_schema import fileio
from tfrecords_schema.errors import ManifestError, SchemaVersionError
from tfrecords_schema.extras import Extra, extra_of
from tfrecords_schema.kinds import KINDS, kind_by_name
from tfrecords_schema.version import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
_REQUIRED = ("schema_version", "stage", "record_kind", "options", "inputs", "counts")

# The count that is the number of records in the folder's shards, per stage that writes shards.
RECORD_COUNT_KEY = {
    "build_npdd": "kept",
    "prepare_problem": "kept",
    "pool_transforms": "kept",
    "steal_labels": "labeled",
    "balance": "records",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _layout_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a manifest's layout (key types and the lake facts in ``extra``); [] when nothing."""
    problems = []

    def expect(key: str, ok: bool, wanted: str, value: Any) -> None:
        if not ok:
            problems.append(f"{key} must be {wanted}, got {json.dumps(value, default=repr)[:80]}")

    version = data.get("schema_version")
    expect("schema_version", _is_int(version), "an integer", version)
    for key in ("stage", "record_kind"):
        expect(key, isinstance(data.get(key), str) and bool(data.get(key)), "a non-empty string", data.get(key))
    if isinstance(data.get("record_kind"), str) and data["record_kind"] and data["record_kind"] not in KINDS:
        problems.append(f"record_kind {data['record_kind']!r} is not a record kind ({', '.join(sorted(KINDS))})")
    for key in ("options", "extra"):
        if key in data:
            expect(key, isinstance(data[key], dict), "an object", data[key])
    expect("created", isinstance(data.get("created", ""), str), "a string", data.get("created"))
    inputs = data.get("inputs")
    expect("inputs", isinstance(inputs, list), "a list", inputs)
    for i, entry in enumerate(inputs if isinstance(inputs, list) else []):
        ok = isinstance(entry, dict) and isinstance(entry.get("folder"), str) and isinstance(entry.get("manifest"), dict)
        expect(f"inputs[{i}]", ok, 'an object with "folder" (a string) and "manifest" (an object)', entry)
    counts = data.get("counts")
    expect("counts", isinstance(counts, dict), "an object of non-negative integers", counts)
    for key, value in (counts.items() if isinstance(counts, dict) else ()):
        expect(f"counts.{key}", _is_int(value) and value >= 0, "a non-negative integer", value)
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    if "shard_lengths" in extra:
        lengths = extra["shard_lengths"]
        ok = isinstance(lengths, list) and all(_is_int(n) and n >= 0 for n in lengths)
        expect("extra.shard_lengths", ok, "a list of non-negative integers (records per shard)", lengths)
    if "num_shards" in extra:
        expect("extra.num_shards", _is_int(extra["num_shards"]) and extra["num_shards"] >= 1, "a positive integer",
               extra["num_shards"])
    return problems


def _consistency_problems(manifest: "Manifest") -> list[str]:
    """Lake facts that contradict each other (only checked on read: a stage writes them from one job)."""
    problems = []
    lengths = manifest.extra.get("shard_lengths")
    num_shards = manifest.extra.get("num_shards")
    if lengths is not None and num_shards is not None and len(lengths) != num_shards:
        problems.append(f"extra.shard_lengths lists {len(lengths)} shards but extra.num_shards is {num_shards}")
    key = RECORD_COUNT_KEY.get(manifest.stage)
    if lengths is not None and key in manifest.counts and sum(lengths) != manifest.counts[key]:
        problems.append(f"extra.shard_lengths adds up to {sum(lengths)} records but counts.{key} is "
                        f"{manifest.counts[key]}")
    return problems


def expected_records(manifest: "Manifest") -> int | None:
    """How many records the folder's shards hold by its manifest, or None when it does not say."""
    lengths = manifest.extra.get("shard_lengths")
    if lengths is not None:
        return sum(lengths)
    key = RECORD_COUNT_KEY.get(manifest.stage)
    return manifest.counts.get(key) if key else None


@dataclasses.dataclass
class Manifest:
    """The description of one stage output folder."""

    stage: str
    record_kind: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    inputs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def typed_extra(self) -> Extra:
        """``extra`` as its stage's typed class (tfrecords_schema.extras): the one spelling of each key."""
        return extra_of(self.stage, self.extra)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> "Manifest":
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ManifestError(f"{where} is missing {', '.join(missing)}; rerun the stage that wrote it")
        problems = _layout_problems(data)
        if problems:
            raise ManifestError(f"{where} is malformed: {'; '.join(problems)}; rerun the stage that wrote it")
        known = {f.name for f in dataclasses.fields(cls)}
        manifest = cls(**{key: value for key, value in data.items() if key in known})
        problems = _consistency_problems(manifest)
        if problems:
            raise ManifestError(f"{where} contradicts itself: {'; '.join(problems)}; rerun the stage that wrote it")
        return manifest


def input_entry(folder: str, manifest: Manifest) -> dict[str, Any]:
    """How a stage records one of its inputs: the folder and that folder's whole manifest."""
    return {"folder": str(folder), "manifest": manifest.to_dict()}


def write_manifest(folder: str, manifest: Manifest) -> str:
    """Write ``folder/manifest.json`` atomically (after the shards, so it marks a finished folder)."""
    kind_by_name(manifest.record_kind)  # refuse a misspelt kind at write time
    bad_counts = {k: v for k, v in manifest.counts.items() if not _is_int(v) or v < 0} if isinstance(
        manifest.counts, dict) else manifest.counts
    if bad_counts:
        raise ManifestError(f"manifest counts must be non-negative integers, got {bad_counts}")
    problems = _layout_problems(manifest.to_dict())
    if problems:
        raise ManifestError(f"manifest for {folder} is malformed: {'; '.join(problems)}")
    if not manifest.created:
        manifest.created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    fileio.makedirs(folder)
    path = fileio.join(folder, MANIFEST_NAME)
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=True, default=str)
    fileio.write_text_atomically(path, text + "\n")
    return path


def read_manifest(folder: str) -> Manifest:
    """The manifest of a stage output folder, refusing a missing, malformed or other-version one."""
    path = fileio.join(folder, MANIFEST_NAME)
    if not fileio.exists(path):
        raise ManifestError(
            f"{folder} has no {MANIFEST_NAME}: it is not a finished copycat stage output; "
            "run the stage that writes it (or let it finish) first"
        )
    try:
        data = json.loads(fileio.read_text(path))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path} is not valid JSON ({error}); rerun the stage that wrote it") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} must hold a JSON object; rerun the stage that wrote it")
    version = data.get("schema_version")
    if not _is_int(version):
        raise ManifestError(f"{path}: schema_version must be an integer, got {json.dumps(version)}; "
                            "rerun the stage that wrote it")
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{folder} was written with lake schema version {version}, but this copycat reads version "
            f"{SCHEMA_VERSION}; rerun the stage that wrote it with this copycat, or use the copycat "
            f"release that reads version {version}"
        )
    return Manifest.from_dict(data, where=path)
