"""The pool index: ids, thumbnails and bytes equal to the folder's records; rebuilt only when the pool changed."""

import io
import os

import numpy as np
import PIL.Image

from copycat_tf.adaptive.pool_index import open_or_build
from tests.conftest import image_record
from tfrecords_schema import IMAGE, Manifest, open_folder, read_records, write_manifest, write_shards


def _pool(folder, seeds):
    write_shards(str(folder), IMAGE, [image_record(s, 12, 10) for s in seeds], num_shards=2)
    write_manifest(str(folder), Manifest(stage="build_npdd", record_kind="image", counts={"kept": len(seeds)}))
    return open_folder(str(folder), IMAGE)


def test_index_holds_every_record_and_is_reused(tmp_path):
    pool = _pool(tmp_path / "pool", range(30))
    index = open_or_build(pool, str(tmp_path / "cache"), size=8)
    records = {r["id"]: r for r in read_records(pool.path, IMAGE)}
    assert sorted(index.ids) == sorted(records) and index.thumbs.shape == (30, 8, 8, 3)
    for position in (0, 17, 29):
        record = records[index.ids[position]]
        assert index.image(position) == record["image"] and index.sources[position] == record["source"]
        expected = PIL.Image.open(io.BytesIO(record["image"])).convert("RGB").resize((8, 8), PIL.Image.Resampling.BILINEAR)
        assert np.abs(index.thumbs[position].astype(int) - np.asarray(expected, int)).mean() < 40  # a small version of it
    built = os.listdir(tmp_path / "cache")
    index.close()
    again = open_or_build(pool, str(tmp_path / "cache"), size=8)
    assert again.ids == index.ids and os.listdir(tmp_path / "cache") == built
    other = open_or_build(_pool(tmp_path / "other", range(40, 45)), str(tmp_path / "cache"), size=8)
    assert len(other) == 5 and len(os.listdir(tmp_path / "cache")) == 2  # one cache serves both pools
