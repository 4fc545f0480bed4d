"""tf.data parsing of lake shards: values, shapes and dtypes match what was written."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import image_record, labeled_record
from tfrecords_schema import IMAGE, LABELED_IMAGE, SCHEMA_VERSION, encode, list_shards, to_signed64, write_shards
from tfrecords_schema.tfdata import feature_spec, parse_batch_function, parse_function

EXPECTED_DTYPES = {"bytes": tf.string, "string": tf.string, "int64": tf.int64}


def _stored(record: dict, name: str):
    """The value tf.data should produce for one field of a Python record."""
    value = record[name]
    if name == "phash":
        return to_signed64(value)
    return value.encode() if isinstance(value, str) else value


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("lake"))
    records = [labeled_record(i, label=i % 3, phash=(i << 60) | i) for i in range(9)]
    write_shards(folder, LABELED_IMAGE, records, num_shards=2)
    return folder, {r["id"]: r for r in records}


def test_single_parse_gives_written_values_shapes_and_dtypes(shard_folder):
    folder, by_id = shard_folder
    dataset = tf.data.TFRecordDataset(list_shards(folder)).map(parse_function(LABELED_IMAGE))
    seen = 0
    for parsed in dataset:
        assert set(parsed) == set(LABELED_IMAGE.field_names)
        record = by_id[parsed["id"].numpy().decode()]
        for field in LABELED_IMAGE.fields:
            tensor = parsed[field.name]
            assert tensor.shape == (), field.name
            assert tensor.dtype == EXPECTED_DTYPES[field.dtype], field.name
            assert tensor.numpy() == _stored(record, field.name), field.name
        seen += 1
    assert seen == len(by_id)


def test_batch_parse_matches_single_parse(shard_folder):
    folder, by_id = shard_folder
    files = list_shards(folder)
    single = list(tf.data.TFRecordDataset(files).map(parse_function(LABELED_IMAGE)).as_numpy_iterator())
    batched = next(iter(tf.data.TFRecordDataset(files).batch(100).map(parse_batch_function(LABELED_IMAGE))))
    assert batched["label"].shape == (len(by_id),)
    for name in LABELED_IMAGE.field_names:
        np.testing.assert_array_equal(batched[name].numpy(), [row[name] for row in single])


def test_decoded_pixels_equal_the_generated_ones(shard_folder, pixels_of):
    folder, by_id = shard_folder
    parsed = next(iter(tf.data.TFRecordDataset(list_shards(folder)).map(parse_function(IMAGE))))
    pixels = tf.io.decode_image(parsed["image"], channels=3).numpy()
    np.testing.assert_array_equal(pixels, pixels_of(by_id[parsed["id"].numpy().decode()]["image"]))
    assert pixels.shape == (parsed["height"], parsed["width"], 3)


def test_other_schema_version_fails_in_tf_data():
    example = tf.train.Example.FromString(encode(IMAGE, image_record(1)))
    example.features.feature["schema_version"].int64_list.value[0] = SCHEMA_VERSION + 7
    with pytest.raises(tf.errors.InvalidArgumentError, match="schema version"):
        parse_function(IMAGE)(tf.constant(example.SerializeToString()))


def test_missing_field_fails_in_tf_data():
    example = tf.train.Example.FromString(encode(IMAGE, image_record(2)))
    del example.features.feature["source_key"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="source_key"):
        parse_function(IMAGE)(tf.constant(example.SerializeToString()))


def test_feature_spec_covers_every_field_and_the_version():
    assert set(feature_spec(LABELED_IMAGE)) == set(LABELED_IMAGE.field_names) | {"schema_version"}
