"""Python-side validation, encoding and decoding of lake records (tf.train.Example bytes).

Records are plain dicts keyed by field name. Every record written carries the schema version as
the extra feature ``schema_version``; reading a record with another version is refused.
"""

import numbers
from typing import Any, Mapping

import numpy as np

from tfrecords_schema.errors import SchemaError, SchemaVersionError
from tfrecords_schema.hashing import to_signed64, to_unsigned64
from tfrecords_schema.kinds import BYTES, INT64, INT64_RANGE, STRING, Field, RecordKind
from tfrecords_schema.version import SCHEMA_VERSION

VERSION_FEATURE = "schema_version"
_PHASH = "phash"  # unsigned in Python, signed in storage
_TYPE_WORDS = {BYTES: "bytes", STRING: "a str", INT64: "an int"}


def _coerce(kind: RecordKind, field: Field, value: Any) -> Any:
    """The value in its canonical Python type, or SchemaError naming the field and both types."""

    def wrong() -> SchemaError:
        return SchemaError(
            f"{kind.name} record: field {field.name!r} ({field.doc}) must be "
            f"{_TYPE_WORDS[field.dtype]}, got {type(value).__name__}"
        )

    if field.dtype == BYTES:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise wrong()
    if field.dtype == STRING:
        if isinstance(value, str):
            return value
        raise wrong()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise wrong()
    return int(value)


def validate(kind: RecordKind, record: Mapping[str, Any]) -> dict:
    """A checked copy of ``record``: every field present, of the right type, with a sane value.

    Unknown keys are refused too: they are almost always a misspelt field name.
    """
    if not isinstance(record, Mapping):
        raise SchemaError(f"{kind.name} record must be a dict of fields, got {type(record).__name__}")
    unknown = sorted(set(record) - set(kind.field_names) - {VERSION_FEATURE})
    if unknown:
        raise SchemaError(
            f"{kind.name} record has unknown field(s) {', '.join(map(repr, unknown))}; "
            f"its fields are {', '.join(kind.field_names)}"
        )
    if VERSION_FEATURE in record:
        _check_version(kind, record[VERSION_FEATURE])
    checked = {}
    for field in kind.fields:
        if field.name not in record:
            raise SchemaError(f"{kind.name} record is missing field {field.name!r} ({field.doc})")
        value = _coerce(kind, field, record[field.name])
        if field.dtype == INT64 and field.name != _PHASH and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise SchemaError(f"{kind.name} record: field {field.name!r} is outside the int64 range: {value}")
        problem = field.check(value) if field.check else None
        if problem:
            raise SchemaError(f"{kind.name} record: field {field.name!r} {problem}")
        checked[field.name] = value
    for record_check in kind.record_checks:
        problem = record_check(checked)
        if problem:
            raise SchemaError(f"{kind.name} record: {problem}")
    return checked


def _check_version(kind: RecordKind, version: Any) -> None:
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{kind.name} record was written with lake schema version {version}, but this copycat "
            f"reads version {SCHEMA_VERSION}; rebuild the folder with this copycat"
        )


def encode(kind: RecordKind, record: Mapping[str, Any]) -> bytes:
    """Serialized tf.train.Example bytes of a validated record.

    Written with the protobuf wire format directly (no TensorFlow import), so the per-image
    workers of build_npdd can encode records; TensorFlow parses the bytes as the same Example
    (tested against ``tf.train.Example``).
    """
    checked = validate(kind, record)
    entries = [_feature_entry(VERSION_FEATURE, _int64_feature(SCHEMA_VERSION))]
    for field in kind.fields:
        value = checked[field.name]
        if field.dtype == BYTES:
            feature = _bytes_feature(value)
        elif field.dtype == STRING:
            feature = _bytes_feature(value.encode())
        else:
            feature = _int64_feature(to_signed64(value) if field.name == _PHASH else value)
        entries.append(_feature_entry(field.name, feature))
    features = b"".join(_length_delimited(1, entry) for entry in entries)  # Features.feature (a map)
    return _length_delimited(1, features)  # Example.features


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 is sent as its 64-bit two's complement (10 bytes)
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bytes_feature(value: bytes) -> bytes:
    return _length_delimited(1, _length_delimited(1, value))  # Feature.bytes_list = BytesList(value=[value])


def _int64_feature(value: int) -> bytes:
    return _length_delimited(3, _length_delimited(1, _varint(value)))  # Feature.int64_list, packed values


def _feature_entry(name: str, feature: bytes) -> bytes:
    return _length_delimited(1, name.encode()) + _length_delimited(2, feature)  # map entry: key 1, value 2


def decode(kind: RecordKind, serialized: bytes) -> dict:
    """The validated record dict inside serialized Example bytes.

    Features the kind does not know are ignored, so a labeled_image record reads as an image.
    """
    import tensorflow as tf

    example = tf.train.Example()
    try:
        example.ParseFromString(serialized)
    except Exception as error:  # protobuf raises its own DecodeError
        raise SchemaError(f"{kind.name} record is not a tf.train.Example: {error}") from None
    features = example.features.feature
    if VERSION_FEATURE not in features:
        raise SchemaError(f"{kind.name} record is missing field {VERSION_FEATURE!r} (the lake schema version)")
    _check_version(kind, _single(kind, VERSION_FEATURE, INT64, features[VERSION_FEATURE]))
    record = {}
    for field in kind.fields:
        if field.name not in features:
            raise SchemaError(f"{kind.name} record is missing field {field.name!r} ({field.doc})")
        value = _single(kind, field.name, field.dtype, features[field.name])
        if field.dtype == STRING:
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise SchemaError(f"{kind.name} record: field {field.name!r} is not UTF-8 text") from None
        elif field.name == _PHASH:
            value = to_unsigned64(value)
        record[field.name] = value
    return validate(kind, record)


def _single(kind: RecordKind, name: str, dtype: str, feature) -> Any:
    """The one value of a stored feature, refusing the wrong list type or count."""
    stored = feature.WhichOneof("kind")
    wanted = "int64_list" if dtype == INT64 else "bytes_list"
    if stored != wanted:
        raise SchemaError(
            f"{kind.name} record: field {name!r} must be stored as {wanted}, found {stored or 'no value'}"
        )
    values = getattr(feature, wanted).value
    if len(values) != 1:
        raise SchemaError(f"{kind.name} record: field {name!r} must hold exactly one value, found {len(values)}")
    return values[0]
