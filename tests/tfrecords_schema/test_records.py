"""Python-side encode/decode/validate of lake records: round trip and refusal of malformed records."""

import pytest
import tensorflow as tf

from tests.conftest import image_record, labeled_record
from tfrecords_schema import (
    IMAGE,
    LABELED_IMAGE,
    SCHEMA_VERSION,
    SchemaError,
    SchemaVersionError,
    decode,
    encode,
    kind_by_name,
    validate,
)


@pytest.mark.parametrize("kind,make", [(IMAGE, image_record), (LABELED_IMAGE, labeled_record)])
def test_round_trip_keeps_every_value(kind, make):
    record = make(1)
    assert decode(kind, encode(kind, record)) == record


def _tf_example(kind, record) -> "tf.train.Example":
    """The Example TensorFlow itself builds for a record (the independent implementation)."""
    checked = validate(kind, record)
    feature = {"schema_version": tf.train.Feature(int64_list=tf.train.Int64List(value=[SCHEMA_VERSION]))}
    for field in kind.fields:
        value = checked[field.name]
        if isinstance(value, bytes):
            feature[field.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, str):
            feature[field.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            value = value - (1 << 64) if value >= 1 << 63 else value
            feature[field.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.parametrize("phash", [0, 1, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, (1 << 64) - 1])
@pytest.mark.parametrize("kind,make", [(IMAGE, image_record), (LABELED_IMAGE, labeled_record)])
def test_encoded_bytes_parse_as_the_example_tensorflow_builds(kind, make, phash):
    # encode writes the wire format itself (TensorFlow-free, for the per-image workers): TensorFlow's
    # parser must see the very Example that tf.train.Example would have built, negative int64s included
    record = make(5, phash=phash, source_key="ünïcode/ключ.jpg", image=bytes(range(256)) * 3)
    assert tf.train.Example.FromString(encode(kind, record)) == _tf_example(kind, record)


def test_encoding_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, PIL.Image\nfrom tfrecords_schema import IMAGE, encode\n"
            "from tfrecords_schema.image_records import image_record\n"
            "encode(IMAGE, image_record(PIL.Image.new('RGB', (9, 8), 'red'), 'test:x', 'k'))\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr


def test_phash_with_top_bit_set_survives_int64_storage():
    record = image_record(2, phash=0xFFFF_0000_1234_5678)
    assert decode(IMAGE, encode(IMAGE, record))["phash"] == 0xFFFF_0000_1234_5678


def test_labeled_record_reads_as_image_record():
    record = labeled_record(3, label=4)
    as_image = decode(IMAGE, encode(LABELED_IMAGE, record))
    assert as_image == {name: record[name] for name in IMAGE.field_names}


def test_image_record_does_not_read_as_labeled_record():
    with pytest.raises(SchemaError, match="missing field 'label'"):
        decode(LABELED_IMAGE, encode(IMAGE, image_record(4)))


@pytest.mark.parametrize("field", LABELED_IMAGE.field_names)
def test_missing_field_is_refused_by_name(field):
    record = labeled_record(5)
    del record[field]
    with pytest.raises(SchemaError, match=f"missing field '{field}'"):
        encode(LABELED_IMAGE, record)


WRONG_TYPES = {"bytes": "not bytes", "string": b"bytes, not text", "int64": "12"}


@pytest.mark.parametrize("field", LABELED_IMAGE.fields, ids=lambda f: f.name)
def test_wrong_type_is_refused_by_name(field):
    record = labeled_record(6, **{field.name: WRONG_TYPES[field.dtype]})
    with pytest.raises(SchemaError, match=f"field '{field.name}' .* must be"):
        encode(LABELED_IMAGE, record)


def test_bool_is_not_an_int():
    with pytest.raises(SchemaError, match="field 'height'"):
        validate(IMAGE, {**image_record(7), "height": True})


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"height": 0}, "height"),
        ({"width": -3}, "width"),
        ({"original_height": 0}, "original_height"),
        ({"format": "gif"}, "format"),
        ({"id": "XYZ"}, "id"),
        ({"phash": 1 << 64}, "phash"),
        ({"phash": -1}, "phash"),
        ({"image": b""}, "image"),
        ({"source": ""}, "source"),
        ({"source_key": ""}, "source_key"),
        ({"label": -1}, "label"),
        ({"label_kind": "GT"}, "label_kind"),
        ({"oracle_fingerprint": ""}, "oracle_fingerprint"),  # SL needs one
        ({"label_kind": "OL"}, "oracle_fingerprint"),  # OL must have none
    ],
)
def test_bad_values_are_refused_by_name(overrides, field):
    with pytest.raises(SchemaError, match=f"'{field}'"):
        validate(LABELED_IMAGE, labeled_record(8, **overrides))


def test_unknown_field_is_refused_by_name():
    with pytest.raises(SchemaError, match="unknown field.*'hieght'"):
        validate(IMAGE, image_record(9, hieght=12))


def test_numpy_integers_are_accepted():
    import numpy as np

    record = {**image_record(10), "height": np.int64(12), "width": np.uint16(10)}
    assert validate(IMAGE, record)["height"] == 12


def _example(record: dict, **replace_features) -> bytes:
    """Serialized bytes of a valid record with some features replaced or (None) removed."""
    example = tf.train.Example.FromString(encode(LABELED_IMAGE, record))
    for name, feature in replace_features.items():
        if feature is None:
            del example.features.feature[name]
        else:
            example.features.feature[name].CopyFrom(feature)
    return example.SerializeToString()


@pytest.mark.parametrize("field", LABELED_IMAGE.field_names)
def test_stored_record_missing_a_field_is_refused_by_name(field):
    with pytest.raises(SchemaError, match=f"missing field '{field}'"):
        decode(LABELED_IMAGE, _example(labeled_record(11), **{field: None}))


def test_stored_field_of_wrong_list_type_is_refused_by_name():
    as_bytes = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"12"]))
    with pytest.raises(SchemaError, match="field 'height' must be stored as int64_list, found bytes_list"):
        decode(LABELED_IMAGE, _example(labeled_record(12), height=as_bytes))


def test_stored_field_with_two_values_is_refused_by_name():
    two = tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))
    with pytest.raises(SchemaError, match="field 'label' must hold exactly one value, found 2"):
        decode(LABELED_IMAGE, _example(labeled_record(13), label=two))


def test_stored_record_of_other_schema_version_names_both_versions():
    other = tf.train.Feature(int64_list=tf.train.Int64List(value=[SCHEMA_VERSION + 1]))
    with pytest.raises(SchemaVersionError, match=f"version {SCHEMA_VERSION + 1}.*reads version {SCHEMA_VERSION}"):
        decode(LABELED_IMAGE, _example(labeled_record(14), schema_version=other))


def test_garbage_bytes_are_refused():
    with pytest.raises(SchemaError):
        decode(IMAGE, b"\xff\x00 definitely not a proto \x12")


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(SchemaError, match="image, labeled_image"):
        kind_by_name("picture")
