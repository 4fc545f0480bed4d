"""The end every stage shares: TFDS metadata for the shards the job wrote, then the manifest."""

import os

import pytest
import tensorflow_datasets as tfds

from beam_pipelines import lake_io
from tfrecords_schema import IMAGE, MANIFEST_NAME, Manifest, open_folder
from tests.conftest import image_record


def test_finish_folder_describes_the_shards_in_index_order_then_writes_the_manifest(tmp_path):
    out = str(tmp_path / "folder")
    os.makedirs(out)
    stats = [lake_io.write_shard_file(out, IMAGE, i, 2, [image_record(10 * i + j, 8, 8) for j in range(n)])
             for i, n in ((0, 3), (1, 1))]
    stats.reverse()  # the job's stats come in any order
    assert lake_io.shard_lengths(stats) == [3, 1]
    manifest = Manifest(stage="pool_transforms", record_kind="image", counts={"kept": 4},
                        extra={"shard_lengths": [3, 1]})
    lake_io.finish_folder(out, manifest, stats)
    info = tfds.builder_from_directory(out).info.splits["images"]
    assert info.shard_lengths == [3, 1] and info.num_bytes == sum(s["bytes"] for s in stats)
    assert open_folder(out, IMAGE).records == 4


def test_a_folder_whose_metadata_cannot_be_written_gets_no_manifest(tmp_path, monkeypatch):
    out = str(tmp_path / "folder")
    os.makedirs(out)
    stats = [lake_io.write_shard_file(out, IMAGE, 0, 1, [image_record(1, 8, 8)])]

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lake_io, "write_tfds_metadata", fail)
    manifest = Manifest(stage="pool_transforms", record_kind="image", counts={"kept": 1}, extra={"shard_lengths": [1]})
    with pytest.raises(OSError, match="disk full"):
        lake_io.finish_folder(out, manifest, stats)
    assert not os.path.exists(os.path.join(out, MANIFEST_NAME))  # the folder does not pass for a finished one


def test_one_shard_policy_for_every_stage():
    mib = 2**20
    assert lake_io.shards_for(0) == 1 and lake_io.shards_for(5 * mib) == 1
    assert lake_io.shards_for(129 * mib) == 2 and lake_io.shards_for(256 * mib) == 2
    assert lake_io.shards_for(5 * mib, requested=7) == 7  # --num_shards wins
    assert lake_io.shards_for(5 * mib, shard_mb=1) == 5
