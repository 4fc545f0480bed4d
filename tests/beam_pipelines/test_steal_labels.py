"""steal_labels on DirectRunner: the oracle's own labels, the ledger, the budget, kill -9 and rerun."""

import io
import os

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.steal_labels import StealLabelsConfig, run
from copycat_tf.ledger import Ledger
from copycat_tf.oracles import OracleError, OracleSpec
from tests.conftest import image_record
from tests.predict_server import PredictServer, killed_while_held
from tests.tiny_oracles import NUM_CLASSES, expected_classes, save_bytes_oracle
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, list_shards, read_records, write_manifest, write_shards

COUNT = 60


@pytest.fixture(scope="module")
def npdd(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("npdd"))
    records = [image_record(i, 16, 16) for i in range(COUNT)]
    write_shards(folder, IMAGE, records, num_shards=3)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": COUNT}))
    pixels = np.stack([np.asarray(PIL.Image.open(io.BytesIO(r["image"])).convert("RGB")) for r in records])
    return folder, {r["id"]: int(c) for r, c in zip(records, expected_classes(pixels))}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    return save_bytes_oracle(str(tmp_path_factory.mktemp("oracle") / "model"))


def _labels(folder):
    return {r["id"]: r for r in read_records(folder, LABELED_IMAGE)}


def test_labels_are_the_oracles_own_and_a_rerun_pays_nothing(npdd, oracle, tmp_path):
    images, expected = npdd
    config = StealLabelsConfig(images=images, oracle=OracleSpec(oracle), output=str(tmp_path / "sl"), batch_size=8,
                               price_per_1000=2.0)
    manifest = run(config)
    labeled = _labels(config.output)
    assert {i: r["label"] for i, r in labeled.items()} == expected
    assert all(r["label_kind"] == "SL" and r["oracle_fingerprint"].startswith("savedmodel:") for r in labeled.values())
    assert manifest.counts == {"images": COUNT, "labeled": COUNT, "ledger_hits": 0, "queries": COUNT, "unlabeled": 0}
    histogram = np.bincount(list(expected.values()), minlength=NUM_CLASSES).tolist()
    assert manifest.extra["label_histogram"] == histogram
    assert manifest.extra["classes_never_seen"] == [c for c, n in enumerate(histogram) if n == 0]
    assert manifest.extra["num_classes"] == NUM_CLASSES
    assert manifest.extra["knowledge"] == {"strategy": "random", "pool_transforms": [], "num_classes": NUM_CLASSES,
                                           "num_classes_from": "oracle output", "query_images_from": "build_npdd",
                                           "variant_queries": 0}
    assert manifest.extra["cost"]["this_run"] == pytest.approx(COUNT * 2.0 / 1000)
    first_shards = [open(p, "rb").read() for p in list_shards(config.output)]

    again = run(config)
    assert again.counts["queries"] == 0 and again.counts["ledger_hits"] == COUNT
    assert [open(p, "rb").read() for p in list_shards(config.output)] == first_shards


def test_max_queries_is_exact_across_reruns(npdd, oracle, tmp_path):
    images, expected = npdd

    def steal(max_queries):
        return run(StealLabelsConfig(images=images, oracle=OracleSpec(oracle), output=str(tmp_path / "sl"),
                                     batch_size=8, max_queries=max_queries))

    first = steal(25)
    assert first.counts["queries"] == 25 and first.counts["labeled"] == 25 and first.counts["unlabeled"] == 35
    second = steal(25)
    assert second.counts["queries"] == 0 and second.counts["labeled"] == 25
    third = steal(COUNT)
    assert third.counts["queries"] == COUNT - 25 and third.counts["labeled"] == COUNT
    assert third.extra["queries_total"] == COUNT
    assert {i: r["label"] for i, r in _labels(str(tmp_path / "sl")).items()} == expected


def test_the_labeled_folder_has_the_shards_of_its_budget_not_of_the_pool(npdd, oracle, tmp_path, monkeypatch):
    """A 6-query steal of a 60-image pool writes the shards of about 6 images (here with tiny shards, so the pool
    alone would need many)."""
    from beam_pipelines import lake_io

    images, _ = npdd
    pool_bytes = sum(os.path.getsize(path) for path in list_shards(images))
    monkeypatch.setattr(lake_io, "SHARD_MB", pool_bytes / 12 / 2**20)  # the whole pool: 12 shards
    assert lake_io.shards_for(pool_bytes) == 12
    manifest = run(StealLabelsConfig(images=images, oracle=OracleSpec(oracle), output=str(tmp_path / "sl"),
                                     batch_size=8, max_queries=6))
    assert manifest.counts["labeled"] == 6
    assert len(list_shards(str(tmp_path / "sl"))) == lake_io.shards_for(pool_bytes * 6 / COUNT) == 2


def test_labeled_bytes_scales_the_pool_to_the_images_that_can_be_labeled():
    from beam_pipelines.steal_labels import labeled_bytes

    assert labeled_bytes(1000.0, 100, 50.0, 10) == 1000.0 * 10 / 100 + 50.0  # a tenth of the pool, and what was made
    assert labeled_bytes(1000.0, 100, 0.0, 500) == 1000.0  # a budget above the pool: the whole pool
    assert labeled_bytes(1000.0, 100, 50.0, None) == 1050.0  # no budget: every image
    assert labeled_bytes(1000.0, None, 0.0, 10) == 1000.0  # the pool's count unknown: the whole pool


def test_a_data_curve_sharing_one_ledger_pays_only_for_its_largest_point(npdd, oracle, tmp_path):
    images, expected = npdd
    ledger = str(tmp_path / "ledger")

    def point(name, max_queries):
        manifest = run(StealLabelsConfig(images=images, oracle=OracleSpec(oracle), output=str(tmp_path / name),
                                         batch_size=8, max_queries=max_queries, ledger=ledger, seed=3))
        return manifest, set(_labels(str(tmp_path / name)))

    small, small_ids = point("at20", 20)
    assert small.counts["queries"] == 20 and len(small_ids) == 20
    large, large_ids = point("at45", 45)
    assert large.counts["queries"] == 25 and large.counts["ledger_hits"] == 20 and small_ids < large_ids
    full, full_ids = point("all", None)
    assert full.counts["queries"] == COUNT - 45 and len(full_ids) == COUNT
    # Once the ledger holds everything, a smaller point is the prefix again and costs nothing.
    again, again_ids = point("at10", 10)
    assert again.counts["queries"] == 0 and len(again_ids) == 10 and again_ids < small_ids
    fingerprint = next(iter(_labels(str(tmp_path / "all")).values()))["oracle_fingerprint"]
    assert Ledger(ledger, fingerprint).spent() == COUNT  # paid once per image over the four points
    assert {i: r["label"] for i, r in _labels(str(tmp_path / "at45")).items()} == {i: expected[i] for i in large_ids}


def test_the_manifest_records_the_knowledge_a_transformed_pool_used(npdd, oracle, tmp_path):
    images, _ = npdd
    manifest = run(StealLabelsConfig(images=images, oracle=OracleSpec(oracle), output=str(tmp_path / "sl"),
                                     batch_size=8, max_queries=10, pool_transforms="grayscale+invert",
                                     pool=str(tmp_path / "pool")))
    assert manifest.extra["knowledge"] == {"strategy": "random", "pool_transforms": ["grayscale+invert"],
                                           "num_classes": NUM_CLASSES, "num_classes_from": "oracle output",
                                           "query_images_from": "build_npdd",  # natural images, through the pool
                                           "variant_queries": 0}


def test_a_bad_oracle_is_one_clear_error(npdd, tmp_path):
    images, _ = npdd
    with pytest.raises(OracleError, match="no SavedModel there"):
        run(StealLabelsConfig(images=images, oracle=OracleSpec(str(tmp_path / "nothing")), output=str(tmp_path / "sl")))


def _label(pixels):
    return int(pixels.mean() * 7) % 4


def test_kill_9_then_rerun_never_asks_twice_for_an_answered_image(npdd, tmp_path):
    """A labeling run is killed while the oracle holds its 5th batch; the rerun finishes the job."""
    images, _ = npdd
    output = str(tmp_path / "sl")
    arguments = [f"--images={images}", f"--output={output}", "--batch_size=4", "--num_classes=4"]
    with killed_while_held(_label, 5, arguments) as server:
        ledger = Ledger(os.path.join(output, "ledger"), f"rest:{server.url}")
        answered_before = set(ledger.read_answers())
        before = len(server.received_ids)
        asked_before = {i for batch in server.received_ids for i in batch}
        in_flight = set(server.received_ids[4])
        assert len(answered_before) == 16  # four batches of 4 were answered and recorded

        manifest = run(StealLabelsConfig(images=images, oracle=OracleSpec(server.url, num_classes=4),
                                         output=output, batch_size=4))
        asked_after = [i for batch in server.received_ids[before:] for i in batch]

    assert not answered_before & set(asked_after)  # nothing the ledger held was asked again
    repeated = asked_before & set(asked_after)
    assert repeated <= in_flight and len(repeated) <= 4  # only the batch in flight was asked twice
    assert len(asked_after) == COUNT - len(answered_before)
    assert manifest.counts["labeled"] == COUNT and manifest.counts["ledger_hits"] == len(answered_before)
    labeled = _labels(output)
    assert len(labeled) == COUNT
    for record in labeled.values():
        pixels = np.asarray(PIL.Image.open(io.BytesIO(record["image"])).convert("RGB"))
        assert record["label"] == _label(pixels)
    assert ledger.spent() == len(asked_before) + len(asked_after)
