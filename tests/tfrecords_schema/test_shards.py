"""Shard names, deterministic assignment, the in-process writer/reader, and incomplete-set refusal."""

import pytest

from tests.conftest import image_record
from tfrecords_schema import IMAGE, LakeError, list_shards, read_records, shard_filename, shard_for, write_shards


def test_shard_filename_format():
    assert shard_filename("images", 3, 12) == "images-00003-of-00012.tfrecord"
    with pytest.raises(ValueError):
        shard_filename("images", 12, 12)


def test_assignment_depends_only_on_the_key():
    keys = [f"{i:032x}" for i in range(200)]
    first = [shard_for(k, 7) for k in keys]
    assert first == [shard_for(k, 7) for k in reversed(keys)][::-1]
    assert set(first) == set(range(7))  # 200 keys reach all 7 shards


def test_write_then_read_returns_every_record(tmp_path):
    records = [image_record(i) for i in range(6)]
    assert write_shards(str(tmp_path), IMAGE, records, num_shards=3) == 6
    read = sorted(read_records(str(tmp_path), IMAGE), key=lambda r: r["id"])
    assert read == sorted(records, key=lambda r: r["id"])


def test_same_records_in_another_order_give_identical_shard_contents(tmp_path):
    records = [image_record(i) for i in range(8)]
    write_shards(str(tmp_path / "a"), IMAGE, records, num_shards=3)
    write_shards(str(tmp_path / "b"), IMAGE, records[::-1], num_shards=3)
    for a, b in zip(list_shards(str(tmp_path / "a")), list_shards(str(tmp_path / "b"))):
        ids_a = sorted(r["id"] for r in read_records_from(a))
        ids_b = sorted(r["id"] for r in read_records_from(b))
        assert ids_a == ids_b


def read_records_from(path):
    import tensorflow as tf

    from tfrecords_schema import decode

    return [decode(IMAGE, s) for s in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def test_incomplete_shard_set_is_refused(tmp_path):
    write_shards(str(tmp_path), IMAGE, [image_record(i) for i in range(4)], num_shards=3)
    (tmp_path / "images-00001-of-00003.tfrecord").unlink()
    with pytest.raises(LakeError, match="incomplete.*rerun"):
        list_shards(str(tmp_path))
