"""tf.data views of lake records: feature specs and parse functions.

Parsed tensors keep the storage types: ``image`` is the encoded bytes (decode where the pixels
are needed), strings are tf.string, integers tf.int64, and ``phash`` is the 64 hash bits read as a
signed int64. Parsing checks the schema version of every record.
"""

import tensorflow as tf

from tfrecords_schema.kinds import INT64, RecordKind
from tfrecords_schema.records import VERSION_FEATURE
from tfrecords_schema.version import SCHEMA_VERSION


def feature_spec(kind: RecordKind) -> dict:
    """The ``tf.io.parse_example`` spec of a kind (every field required, one value each)."""
    spec = {VERSION_FEATURE: tf.io.FixedLenFeature([], tf.int64)}
    for field in kind.fields:
        spec[field.name] = tf.io.FixedLenFeature([], tf.int64 if field.dtype == INT64 else tf.string)
    return spec


def _checked(kind: RecordKind, parsed: dict) -> dict:
    version = parsed.pop(VERSION_FEATURE)
    check = tf.debugging.assert_equal(
        version,
        tf.constant(SCHEMA_VERSION, tf.int64),
        message=f"{kind.name} record has another lake schema version than this copycat's {SCHEMA_VERSION}",
    )
    with tf.control_dependencies([check]):
        return {name: tf.identity(value) for name, value in parsed.items()}


def parse_function(kind: RecordKind):
    """A function from one serialized record (scalar tf.string) to a dict of scalar tensors."""
    spec = feature_spec(kind)

    def parse(serialized):
        return _checked(kind, tf.io.parse_single_example(serialized, spec))

    return parse


def parse_batch_function(kind: RecordKind):
    """A function from a batch of serialized records ([N] tf.string) to a dict of [N] tensors.

    Parsing after ``batch`` is vectorized and much cheaper per record than parsing one by one.
    """
    spec = feature_spec(kind)

    def parse(serialized):
        return _checked(kind, tf.io.parse_example(serialized, spec))

    return parse
