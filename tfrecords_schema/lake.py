"""Opening a lake folder as a stage input: manifest checked, record kind checked, shards listed."""

import dataclasses

from tfrecords_schema.errors import LakeError
from tfrecords_schema.kinds import RecordKind, kind_by_name
from tfrecords_schema.manifest import Manifest, read_manifest
from tfrecords_schema.shards import list_shards


@dataclasses.dataclass(frozen=True)
class LakeFolder:
    """A finished stage output that a later stage may read as records of ``kind``."""

    path: str
    manifest: Manifest
    kind: RecordKind
    shards: tuple[str, ...]


def open_folder(path: str, kind: RecordKind) -> LakeFolder:
    """Check that ``path`` is a finished stage output holding records readable as ``kind``."""
    manifest = read_manifest(path)
    written = kind_by_name(manifest.record_kind)
    if not written.can_be_read_as(kind):
        raise LakeError(
            f"{path} holds {written.name} records (written by {manifest.stage}), but {kind.name} records "
            "are needed here; point this stage at the right folder"
        )
    return LakeFolder(path=str(path), manifest=manifest, kind=kind, shards=tuple(list_shards(path)))
