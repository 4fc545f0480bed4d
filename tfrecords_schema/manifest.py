"""``manifest.json``: what every stage writes beside its output so later stages can trust it.

A manifest records the lake schema version, the stage that wrote the folder, the record kind of
its shards, the options the stage ran with, the manifests of its inputs (so a folder carries its
whole lineage), counts, and stage-specific facts (``extra``: class names, label histogram, ...).
Reading a folder written with another schema version stops with one error naming both versions.
"""

import dataclasses
import datetime
import json
from typing import Any

from tfrecords_schema import fileio
from tfrecords_schema.errors import ManifestError, SchemaVersionError
from tfrecords_schema.kinds import kind_by_name
from tfrecords_schema.version import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
_REQUIRED = ("schema_version", "stage", "record_kind", "options", "inputs", "counts")


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

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> "Manifest":
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ManifestError(f"{where} is missing {', '.join(missing)}; rerun the stage that wrote it")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def input_entry(folder: str, manifest: Manifest) -> dict[str, Any]:
    """How a stage records one of its inputs: the folder and that folder's whole manifest."""
    return {"folder": str(folder), "manifest": manifest.to_dict()}


def write_manifest(folder: str, manifest: Manifest) -> str:
    """Write ``folder/manifest.json`` atomically (after the shards, so it marks a finished folder)."""
    kind_by_name(manifest.record_kind)  # refuse a misspelt kind at write time
    bad_counts = {k: v for k, v in manifest.counts.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}
    if bad_counts:
        raise ManifestError(f"manifest counts must be non-negative integers, got {bad_counts}")
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
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{folder} was written with lake schema version {version}, but this copycat reads version "
            f"{SCHEMA_VERSION}; rerun the stage that wrote it with this copycat, or use the copycat "
            f"release that reads version {version}"
        )
    return Manifest.from_dict(data, where=path)
