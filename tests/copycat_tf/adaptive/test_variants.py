"""Variant queries (--adaptive_variants): near copies of labeled images reach a class the pool has run out of.

The oracle (loopback TF-Serving) labels an image by its mean colour; class 1 is a band that only
three of the pool's forty images fall in. Once the seed set has asked the whole pool, pool-only
rounds have nothing left to ask; variant rounds keep finding class 1 by asking about near copies of
its three images, spend the budget exactly, keep every variant in a lake folder with its parent's
id, and need no interim copycat.
"""

import io
import os
import random

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.steal_labels import StealLabelsConfig, run
from copycat_tf.adaptive import interim, variants
from copycat_tf.adaptive.rounds import AdaptiveConfig
from copycat_tf.oracles import OracleSpec
from tests.predict_server import PredictServer
from tfrecords_schema.image_records import encode_picture
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, content_id, open_folder, read_records, write_manifest, write_shards

POOL = 40
RARE = 3
BUDGET = 100
SIDE = 12


def band_class(pixels: np.ndarray) -> int:
    mean = float(np.asarray(pixels, dtype=np.float64).mean())
    return 0 if mean < 100 else 1 if mean < 130 else 2


def _pixels(index: int, rng) -> np.ndarray:
    level = rng.uniform(105, 125) if index < RARE else rng.choice([rng.uniform(10, 90), rng.uniform(140, 240)])
    return np.clip(level + rng.normal(0, 2, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    return encode_picture(PIL.Image.fromarray(pixels), "png")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pool"))
    rng = np.random.default_rng(3)
    records = []
    for i in range(POOL):
        pixels = _pixels(i, rng)
        records.append({"image": _png(pixels), "format": "png", "height": SIDE, "width": SIDE,
                        "id": content_id(pixels), "phash": i, "source": "test", "source_key": str(i),
                        "original_height": SIDE, "original_width": SIDE})
    write_shards(folder, IMAGE, records, num_shards=1)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": POOL}))
    return folder, {r["id"] for r in records}


def _config(images, url, output, share, ledger=None, **adaptive):
    knobs = dict(rounds=3, seed_fraction=POOL / BUDGET, explore=0.0, input_size=8, epochs=2, variants=share)
    return StealLabelsConfig(images=images, oracle=OracleSpec(url, num_classes=3), output=output, batch_size=16,
                             max_queries=BUDGET, strategy="adaptive", ledger=ledger,
                             adaptive=AdaptiveConfig(**{**knobs, **adaptive}))


def test_a_variant_is_a_seeded_near_copy_of_its_parent():
    rng = np.random.default_rng(0)
    parent = PIL.Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    partner = PIL.Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    one = variants.make_variant(parent, None, random.Random(1))
    assert one.size == parent.size
    assert np.array_equal(np.asarray(one), np.asarray(variants.make_variant(parent, None, random.Random(1))))
    assert not np.array_equal(np.asarray(one), np.asarray(variants.make_variant(parent, None, random.Random(2))))
    assert not np.array_equal(np.asarray(one), np.asarray(parent))
    blended = variants.make_variant(parent, partner, random.Random(1))
    assert blended.size == parent.size and not np.array_equal(np.asarray(blended), np.asarray(one))
    record = variants.variant_record(blended, "abc", blended=True)
    assert record["source"] == "variant:blend+move" and record["source_key"] == "abc"
    assert record["id"] == content_id(np.asarray(PIL.Image.open(io.BytesIO(record["image"])).convert("RGB")))


def test_variant_rounds_reach_a_class_the_pool_has_run_out_of(pool, tmp_path, monkeypatch):
    images, pool_ids = pool

    def no_interim(*args, **kwargs):
        raise AssertionError("variants=1 with explore=0 must not train an interim copycat")

    with PredictServer(band_class) as server:
        plain = run(_config(images, server.url, str(tmp_path / "pool_only"), 0.0))
        before = len(server.received_ids)
        monkeypatch.setattr(interim, "build_interim", no_interim)
        output = str(tmp_path / "variants")
        made = run(_config(images, server.url, output, 1.0))
        asked = [i for batch in server.received_ids[before:] for i in batch]

    assert plain.counts["queries"] == POOL and plain.extra["adaptive"]["stopped"] == "the pool is exhausted"
    assert plain.extra["label_histogram"][1] == RARE
    assert made.counts["queries"] == BUDGET == len(asked) == len(set(asked))  # the budget, each image once
    assert made.extra["label_histogram"][1] > 3 * RARE  # the rare class, far beyond what the pool holds
    info = made.extra["adaptive"]
    assert info["variants_labeled"] == BUDGET - POOL
    assert made.extra["knowledge"]["variant_queries"] == BUDGET - POOL
    labeled = list(read_records(output, LABELED_IMAGE))
    assert len(labeled) == BUDGET
    kept = open_folder(variants.store_folder(output), IMAGE)
    assert any(entry["folder"] == kept.path for entry in made.inputs)
    made_ids = {r["id"]: r for r in read_records(kept, IMAGE)}
    known = pool_ids | set(made_ids)
    from_variants = [r for r in labeled if r["id"] in made_ids]
    assert len(from_variants) == BUDGET - POOL and not set(made_ids) & pool_ids
    for record in from_variants:  # lineage: a variant's parent is a pool image or an earlier variant
        assert record["source"].startswith("variant:") and record["source_key"] in known
        pixels = np.asarray(PIL.Image.open(io.BytesIO(record["image"])).convert("RGB"))
        assert record["label"] == band_class(pixels)  # the oracle's own answer about the variant itself


def test_a_rerun_finds_its_variants_again_and_asks_nothing(pool, tmp_path):
    """Same output: the variants are loaded again, also when the rerun makes none (--adaptive_variants=0)."""
    images, _ = pool
    output, ledger = str(tmp_path / "sl"), str(tmp_path / "ledger")
    with PredictServer(band_class) as server:
        first = run(_config(images, server.url, output, 1.0, ledger=ledger))
        before = len(server.received_ids)
        again = run(_config(images, server.url, output, 1.0, ledger=ledger))
        without = run(_config(images, server.url, output, 0.0, ledger=ledger))
        assert len(server.received_ids) == before
    for rerun in (again, without):
        assert rerun.counts["queries"] == 0 and rerun.counts["labeled"] == first.counts["labeled"] == BUDGET
        assert rerun.extra["label_histogram"] == first.extra["label_histogram"]
    assert without.extra["knowledge"]["variant_queries"] == BUDGET - POOL


def test_the_store_keeps_each_round_in_a_file_of_its_own(tmp_path):
    folder = str(tmp_path / "variants")
    store = variants.VariantStore(folder, thumb_size=8)
    rng = random.Random(0)
    parents = [(f"p{i}", _png(np.full((SIDE, SIDE, 3), 20 * i, np.uint8))) for i in range(1, 6)]
    first = variants.make_round(parents[:3], [p[1] for p in parents[:3]], rng, set())
    second = variants.make_round(parents[3:], [p[1] for p in parents[3:]], rng, {r["id"] for r in first})
    store.add(first)
    store.add(second)
    open(os.path.join(folder, "rounds", "round-00003.tfrecord.tmp"), "wb").write(b"torn")  # a killed write
    again = variants.VariantStore(folder, thumb_size=8)
    assert again.ids == store.ids == [r["id"] for r in first + second] and len(again) == 5
    assert again.parents == ["p1", "p2", "p3", "p4", "p5"] and np.array_equal(again.thumbs, store.thumbs)
    assert again.images([4, 0]) == [second[1]["image"], first[0]["image"]] == store.images([4, 0])
    finished = open_folder(again.finish(), IMAGE)
    assert sorted(r["id"] for r in read_records(finished, IMAGE)) == sorted(again.ids)
    assert finished.manifest.counts == {"kept": 5}


def test_a_share_of_variants_mixes_pool_picks_and_variants(pool, tmp_path):
    images, pool_ids = pool
    with PredictServer(band_class) as server:
        made = run(_config(images, server.url, str(tmp_path / "half"), 0.5, seed_fraction=0.2))
    info = made.extra["adaptive"]
    assert info["stopped"] == "every class has its quota" and min(made.extra["label_histogram"]) == BUDGET // 3
    assert made.counts["queries"] == sum(made.extra["label_histogram"]) <= BUDGET
    assert 0 < info["variants_labeled"] < BUDGET - 20
    assert any("picks" in r for r in info["rounds"]) and any(r.get("variants_asked") for r in info["rounds"])


class _Pool:
    """A pool index in memory: what the rounds read from pool_index.PoolIndex."""

    def __init__(self, pixels):
        self.ids = [content_id(p) for p in pixels]
        self._images = [_png(p) for p in pixels]
        self.thumbs = np.stack(pixels)

    def __len__(self):
        return len(self.ids)

    def image(self, position):
        return self._images[position]


class _Oracle:
    def __init__(self):
        self.asked = 0

    def classify(self, images):
        self.asked += len(images)
        return [band_class(np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))) for data in images]


def test_a_variant_the_ledger_answered_already_is_not_asked_again(tmp_path):
    """Another output's run on the same ledger made the same (seeded) variant: its answer is taken, not bought."""
    from copycat_tf.adaptive.rounds import _Catalog, _Querier, _variant_queries
    from copycat_tf.ledger import Ledger

    rng = np.random.default_rng(1)
    pool = _Pool([_pixels(i, rng) for i in range(8)])
    labels = np.array([band_class(p) for p in pool.thumbs], np.int64)
    per_class = np.array([2, 3, 1])
    made = {}
    for attempt, answers in enumerate([{}, None]):
        catalog = _Catalog(pool, variants.VariantStore(str(tmp_path / f"v{attempt}"), thumb_size=SIDE))
        oracle = _Oracle()
        querier = _Querier(catalog, oracle, Ledger(str(tmp_path / f"l{attempt}"), "o"), "run", 100, 4,
                           labels.copy(), 3)
        asked, _ = _variant_queries(catalog, querier, per_class, seed=5, number=1,
                                    answers=made if answers is None else answers)
        if answers is not None:  # the first time: asked and answered
            assert asked == oracle.asked == 6
            made = {catalog.id(p): int(querier.labels[p]) for p in range(len(pool), len(catalog))}
        else:  # the second: the same six variants, every answer from the ledger's
            assert asked == oracle.asked == 0
            assert {catalog.id(p): int(querier.labels[p]) for p in range(len(pool), len(catalog))} == made
