"""TFDS descriptions of lake records decode them, and TFDS metadata makes a folder a TFDS dataset."""

import numpy as np
import tensorflow_datasets as tfds

from tests.conftest import image_record, labeled_record
from tfrecords_schema import IMAGE, LABELED_IMAGE, encode, to_signed64, write_shards
from tfrecords_schema.tfds_features import tfds_features, write_tfds_metadata


def test_features_dict_decodes_an_encoded_record(pixels_of):
    record = labeled_record(3, label=2, phash=0x8000_0000_0000_0001)
    features = tfds_features(LABELED_IMAGE, class_names=["zero", "one", "two"])
    decoded = tfds.as_numpy(features.deserialize_example(encode(LABELED_IMAGE, record)))
    np.testing.assert_array_equal(decoded["image"], pixels_of(record["image"]))
    assert decoded["label"] == 2
    assert decoded["phash"] == to_signed64(record["phash"])
    assert decoded["source_key"].decode() == record["source_key"]
    assert features["label"].names == ["zero", "one", "two"]


def test_image_kind_has_no_label_feature():
    assert "label" not in tfds_features(IMAGE).keys()


def test_folder_with_metadata_loads_with_builder_from_directory(tmp_path):
    records = [image_record(i) for i in range(5)]
    write_shards(str(tmp_path), IMAGE, records, num_shards=2)
    write_tfds_metadata(str(tmp_path), IMAGE)
    builder = tfds.builder_from_directory(str(tmp_path))
    assert builder.info.splits["images"].num_examples == 5
    loaded = {x["id"].decode(): x for x in tfds.as_numpy(builder.as_dataset(split="images"))}
    assert set(loaded) == {r["id"] for r in records}
    for record in records:
        assert loaded[record["id"]]["image"].shape == (record["height"], record["width"], 3)
