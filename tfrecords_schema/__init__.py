"""The data lake's contract: record kinds, their encoding, tf.data/TFDS views, shards and manifests.

Every copycat stage reads and writes folders of sharded TFRecord files whose records follow the
kinds defined here, with a ``manifest.json`` beside them. No training code lives here.
"""

from tfrecords_schema.errors import LakeError, ManifestError, SchemaError, SchemaVersionError
from tfrecords_schema.hashing import (
    content_id,
    hamming64,
    phash_from_hex,
    phash_to_hex,
    stable_bucket,
    to_signed64,
    to_unsigned64,
)
from tfrecords_schema.kinds import IMAGE, KINDS, LABELED_IMAGE, Field, RecordKind, kind_by_name
from tfrecords_schema.lake import LakeFolder, check_folder_counts, open_folder
from tfrecords_schema.manifest import MANIFEST_NAME, Manifest, input_entry, read_manifest, write_manifest
from tfrecords_schema.records import VERSION_FEATURE, decode, encode, validate
from tfrecords_schema.shards import (
    count_records,
    iterate_shard,
    list_shards,
    read_records,
    shard_filename,
    shard_for,
    write_shards,
)
from tfrecords_schema.version import SCHEMA_VERSION

__all__ = [
    "IMAGE", "KINDS", "LABELED_IMAGE", "MANIFEST_NAME", "SCHEMA_VERSION", "VERSION_FEATURE",
    "Field", "LakeError", "LakeFolder", "Manifest", "ManifestError", "RecordKind", "SchemaError",
    "SchemaVersionError", "check_folder_counts", "content_id", "count_records", "decode", "encode", "hamming64",
    "input_entry", "iterate_shard",
    "kind_by_name", "list_shards", "open_folder", "phash_from_hex", "phash_to_hex", "read_manifest",
    "read_records", "shard_filename", "shard_for", "stable_bucket", "to_signed64", "to_unsigned64",
    "validate", "write_manifest", "write_shards",
]
