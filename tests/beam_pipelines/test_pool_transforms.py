"""Pool transforms: each transform does what its name says, variants are seeded, the pool counts every image."""

import io
import random

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.pool_transforms import PoolConfig, apply_variant, derive, parse_variants, run
from copycat_tf.errors import CopycatError
from tests.beam_pipelines.conftest import photo
from tests.conftest import image_record
from tfrecords_schema import IMAGE, Manifest, content_id, read_records, write_manifest, write_shards


@pytest.fixture(scope="module")
def picture():
    return photo("coffee.png", (100, 50, 164, 98))  # 64 x 48, colourful


def _pixels(image):
    return np.asarray(image, dtype=np.int64)


def test_parse_variants_chains_and_refuses_unknown_names():
    assert parse_variants("grayscale+invert, contrast,grayscale+invert") == ["grayscale+invert", "contrast"]
    assert parse_variants(["zoom", "rotate"]) == ["zoom", "rotate"] and parse_variants("") == []
    with pytest.raises(CopycatError, match="unknown transform 'sepia'.*known: grayscale, invert, contrast, zoom, rotate, lowres, plain"):
        parse_variants("grayscale+sepia")


def test_each_transform(picture):
    rng = random.Random(0)
    original = _pixels(picture)
    gray = _pixels(apply_variant(picture, "grayscale", rng))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert (_pixels(apply_variant(picture, "invert", rng)) == 255 - original).all()
    dull = PIL.Image.fromarray((original // 4 + 100).astype(np.uint8))
    stretched = _pixels(apply_variant(dull, "contrast", rng))
    assert stretched.min() <= 5 and stretched.max() >= 250 and np.ptp(_pixels(dull)) < 70
    for name in ("zoom", "rotate"):
        changed = apply_variant(picture, name, rng)
        assert changed.size == picture.size and not (_pixels(changed) == original).all()
    blurred = apply_variant(picture, "lowres", rng)
    assert blurred.size == picture.size
    neighbours = lambda a: np.abs(np.diff(a.astype(int), axis=1)).mean()  # noqa: E731
    assert neighbours(_pixels(blurred)) < neighbours(original) / 2  # the fine detail is gone
    chained = _pixels(apply_variant(picture, "grayscale+invert", rng))
    assert (chained == 255 - gray).all()


def test_plain_leaves_a_light_object_on_a_black_background(picture):
    gray = apply_variant(picture, "grayscale", random.Random(0))
    luminance = _pixels(gray)[..., 0]
    plain = _pixels(apply_variant(gray, "plain", random.Random(3)))[..., 0]
    black = plain == 0
    assert 0.5 <= black.mean() <= 0.85 and plain.max() == 255  # 50-80% background (ties included), full range
    assert luminance[black].max() <= luminance[~black].min()  # the darkest pixels became the background
    order = np.argsort(luminance[~black], kind="stable")
    assert (np.diff(plain[~black][order]) >= 0).all()  # the object's shading keeps its order
    dark_on_white = _pixels(apply_variant(gray, "plain+invert", random.Random(3)))[..., 0]
    assert (dark_on_white == 255 - plain).all()
    coloured = _pixels(apply_variant(picture, "plain", random.Random(3)))
    luminance = _pixels(picture).mean(axis=2)
    background = coloured.max(axis=2) == 0
    assert 0.5 <= background.mean() <= 0.85  # black in every channel where the luminance is below the cut
    assert luminance[background].max() <= luminance[~background].min()


def test_strokes_draw_marks_on_a_plain_background_from_the_seed_alone(picture):
    drawn = _pixels(apply_variant(picture, "strokes", random.Random(5)))
    assert drawn.shape == _pixels(picture).shape
    assert (drawn[..., 0] == drawn[..., 1]).all() and (drawn[..., 0] == drawn[..., 2]).all()  # gray
    assert 0.5 <= (drawn[..., 0] < 16).mean() < 0.99 and drawn.max() >= 200  # mostly black, some bright ink
    black = PIL.Image.new("RGB", picture.size)
    np.testing.assert_array_equal(_pixels(apply_variant(black, "strokes", random.Random(5))), drawn)  # not the photo
    assert not np.array_equal(_pixels(apply_variant(picture, "strokes", random.Random(6))), drawn)  # the seed is
    dark_on_white = _pixels(apply_variant(picture, "strokes+invert", random.Random(5)))
    assert (dark_on_white == 255 - drawn).all()


def test_scribble_draws_one_connected_mark_from_the_seed_alone(picture):
    from scipy import ndimage

    drawn = _pixels(apply_variant(picture, "scribble", random.Random(7)))
    assert (drawn[..., 0] == drawn[..., 1]).all() and (drawn[..., 0] == drawn[..., 2]).all()  # gray
    assert 0.5 <= (drawn[..., 0] < 16).mean() < 0.99 and drawn.max() >= 200  # mostly black, some bright ink
    black = PIL.Image.new("RGB", picture.size)
    np.testing.assert_array_equal(_pixels(apply_variant(black, "scribble", random.Random(7))), drawn)  # not the photo
    assert not np.array_equal(_pixels(apply_variant(picture, "scribble", random.Random(8))), drawn)
    connected = []
    for seed in range(40):  # the curves join end to end: mostly one piece of ink (a loop may stand apart)
        ink = _pixels(apply_variant(black, "scribble", random.Random(seed)))[..., 0] > 64
        connected.append(ndimage.label(ink)[1] <= 2)
    assert np.mean(connected) >= 0.8


def test_bold_thickens_light_marks_by_a_square_maximum_filter(picture):
    """``bold``: each pixel the brightest within a (2r+1)-square, r = 2-6% of the short side, checked with numpy."""
    thin = _pixels(apply_variant(picture, "scribble", random.Random(3)))
    bold = _pixels(apply_variant(picture, "scribble+bold", random.Random(3)))
    assert (bold >= thin).all() and (bold[..., 0] > 64).mean() > 1.3 * (thin[..., 0] > 64).mean()
    side = min(picture.size)
    padded = np.pad(thin[..., 0].astype(int), 8, constant_values=-1)
    matches = []
    for reach in range(1, 9):
        windows = [padded[8 + dy:8 + dy + thin.shape[0], 8 + dx:8 + dx + thin.shape[1]]
                   for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
        if np.array_equal(np.max(windows, axis=0), bold[..., 0]):
            matches.append(reach)
    assert len(matches) == 1 and 0.02 * side - 0.5 <= matches[0] <= 0.06 * side + 0.5
    assert (_pixels(apply_variant(picture, "scribble+bold+invert", random.Random(3))) == 255 - bold).all()  # dark on white


def test_derived_records_are_seeded_and_keep_their_lineage():
    record = image_record(5, 32, 32)
    first, again, other_seed = derive(record, "zoom+rotate", 0), derive(record, "zoom+rotate", 0), derive(record, "zoom+rotate", 1)
    assert first == again and first["id"] != other_seed["id"]
    assert first["source"] == "transform:zoom+rotate" and first["source_key"] == record["id"]
    pixels = np.asarray(PIL.Image.open(io.BytesIO(first["image"])).convert("RGB"))
    assert pixels.shape == (32, 32, 3) and first["id"] != record["id"]


def test_the_pool_holds_originals_and_variants_and_counts_the_duplicates(tmp_path):
    images = str(tmp_path / "npdd")
    gray = np.repeat(np.random.default_rng(0).integers(0, 256, (16, 16, 1), dtype=np.uint8), 3, axis=2)
    buffer = io.BytesIO()
    PIL.Image.fromarray(gray).save(buffer, "PNG")
    gray_record = {**image_record(0, 16, 16), "image": buffer.getvalue(), "id": content_id(gray)}
    records = [image_record(i, 16, 16) for i in range(1, 7)] + [gray_record]  # a gray image's grayscale is itself
    write_shards(images, IMAGE, records, num_shards=2)
    write_manifest(images, Manifest(stage="build_npdd", record_kind="image", counts={"kept": len(records)}))
    config = PoolConfig(images=images, output=str(tmp_path / "pool"), variants=["grayscale", "invert"], seed=0)
    manifest = run(config)
    assert manifest.counts == {"originals": 7, "derived": 14, "seen": 21, "kept": 20, "duplicates": 1}
    pool = list(read_records(config.output, IMAGE))
    assert len(pool) == 20 and len({r["id"] for r in pool}) == 20
    by_source = {}
    for r in pool:
        by_source.setdefault(r["source"], []).append(r)
    assert len(by_source["transform:invert"]) == 7 and len(by_source["transform:grayscale"]) == 6
    assert {r["source_key"] for r in by_source["transform:invert"]} == {r["id"] for r in records}
    assert manifest.inputs[0]["folder"] == images
    import tensorflow_datasets as tfds  # the pool ends like every stage: TFDS metadata beside its shards

    builder = tfds.builder_from_directory(config.output)
    assert builder.info.splits["images"].num_examples == 20
    from tfrecords_schema import count_records, list_shards

    assert builder.info.splits["images"].shard_lengths == [count_records(p) for p in list_shards(config.output)]
    assert len(list_shards(config.output)) == 1  # the lake's shard policy: a few KiB fit one shard

    again = run(config)  # same options: the pool is reused, not rebuilt
    assert again.created == manifest.created


def test_a_variant_that_changes_nothing_keeps_the_originals_id():
    gray = np.repeat(np.random.default_rng(1).integers(0, 256, (16, 16, 1), dtype=np.uint8), 3, axis=2)
    buffer = io.BytesIO()
    PIL.Image.fromarray(gray).save(buffer, "PNG")
    record = {**image_record(0, 16, 16), "image": buffer.getvalue(), "id": "id-of-the-full-resolution-original"}
    derived = derive(record, "grayscale", 0)
    assert derived["id"] == record["id"] and derived["source"] == "transform:grayscale"


def test_the_pool_never_overwrites_another_stages_folder(tmp_path):
    images = str(tmp_path / "npdd")
    write_shards(images, IMAGE, [image_record(i, 16, 16) for i in range(3)], num_shards=1)
    write_manifest(images, Manifest(stage="build_npdd", record_kind="image", counts={"kept": 3}))
    with pytest.raises(CopycatError, match="overlaps the input --images"):
        run(PoolConfig(images=images, output=images, variants=["invert"]))
    other = str(tmp_path / "other_npdd")
    write_shards(other, IMAGE, [image_record(i, 16, 16) for i in range(2)], num_shards=1)
    write_manifest(other, Manifest(stage="build_npdd", record_kind="image", counts={"kept": 2}))
    with pytest.raises(CopycatError, match="holds an output of build_npdd"):
        run(PoolConfig(images=images, output=other, variants=["invert"]))
    assert len(list(read_records(images, IMAGE))) == 3
    assert len(list(read_records(other, IMAGE))) == 2
