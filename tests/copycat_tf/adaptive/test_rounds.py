"""Adaptive querying end to end against an oracle whose classes are rare by construction.

The oracle (a loopback TF-Serving server) labels an image by its mean colour: two classes live in
narrow bands between three common ones, so about 1 image in 150 belongs to each. Random querying
needs hundreds of queries to see both; the adaptive rounds should find them within a small budget
(the interim copycat is least sure exactly at the boundaries where the narrow bands sit).
"""

import io
import os

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.steal_labels import StealLabelsConfig, run
from copycat_tf.adaptive.rounds import AdaptiveConfig
from copycat_tf.adaptive.selection import random_order
from copycat_tf.errors import CopycatError
from copycat_tf.ledger import Ledger
from copycat_tf.oracles import OracleSpec
from tests.predict_server import PredictServer, killed_while_held
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, content_id, read_records, write_manifest, write_shards

POOL = 1500
NUM_CLASSES = 5
BANDS = [(0, 100), (100, 101.5), (101.5, 160), (160, 161.5), (161.5, 256)]  # classes 1 and 3 are rare
BUDGET = 200
ADAPTIVE = AdaptiveConfig(rounds=6, seed_fraction=0.2, explore=0.3, input_size=8, epochs=12)


def mean_class(pixels: np.ndarray) -> int:
    mean = float(np.asarray(pixels, dtype=np.float64).mean())
    return next(c for c, (low, high) in enumerate(BANDS) if low <= mean < high)


RARE_PER_CLASS = 6


def _level(index: int, rng) -> float:
    """Mean colour of image ``index``: a few in each rare band, the rest anywhere outside them."""
    rare = [c for c in (1, 3) for _ in range(RARE_PER_CLASS)]
    if index < len(rare):
        low, high = BANDS[rare[index]]
        return rng.uniform(low + 0.2, high - 0.2)
    while True:
        level = rng.uniform(0, 255)
        if mean_class(np.full(1, level)) not in (1, 3):
            return level


def _image(index: int, rng) -> bytes:
    level = _level(index, rng)
    tint = rng.uniform(-25, 25, size=3)
    tint -= tint.mean()
    pixels = np.clip(level + tint + rng.normal(0, 4, (8, 8, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue(), pixels


def _pool(folder: str, size: int):
    rng = np.random.default_rng(0)
    records, classes = [], {}
    for i in range(size):
        data, pixels = _image(i, rng)
        image_id = content_id(pixels)
        classes[image_id] = mean_class(pixels)
        records.append({"image": data, "format": "png", "height": 8, "width": 8, "id": image_id, "phash": i,
                        "source": "test", "source_key": str(i), "original_height": 8, "original_width": 8})
    write_shards(folder, IMAGE, records, num_shards=2)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": size}))
    return folder, classes


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return _pool(str(tmp_path_factory.mktemp("pool")), POOL)


def _random_queries_to_cover(classes: dict, seed: int) -> int:
    """How many queries the random strategy (seeded-hash order) needs until every class has been seen."""
    ids = sorted(classes)
    seen = set()
    for count, position in enumerate(random_order(ids, seed), start=1):
        seen.add(classes[ids[position]])
        if len(seen) == NUM_CLASSES:
            return count
    return len(ids) + 1


def _config(images, url, output, strategy, **overrides):
    return StealLabelsConfig(images=images, oracle=OracleSpec(url, num_classes=NUM_CLASSES), output=output,
                             batch_size=10, max_queries=BUDGET, strategy=strategy, adaptive=ADAPTIVE, **overrides)


def test_the_pool_makes_two_classes_rare(pool):
    _, classes = pool
    counts = np.bincount(list(classes.values()), minlength=NUM_CLASSES)
    assert 0 < counts[1] < POOL / 100 and 0 < counts[3] < POOL / 100
    assert _random_queries_to_cover(classes, seed=0) > 2 * BUDGET  # random cannot cover them within the budget


def test_adaptive_finds_every_class_within_the_budget_random_does_not(pool, tmp_path):
    images, classes = pool
    with PredictServer(mean_class) as server:
        plain = run(_config(images, server.url, str(tmp_path / "random"), "random"))
        random_asked = [i for batch in server.received_ids for i in batch]
        before = len(server.received_ids)
        adaptive = run(_config(images, server.url, str(tmp_path / "adaptive"), "adaptive"))
        adaptive_asked = [i for batch in server.received_ids[before:] for i in batch]

    assert len(random_asked) == BUDGET and plain.extra["classes_never_seen"]
    assert adaptive.extra["classes_never_seen"] == []
    assert adaptive.extra["coverage"]["classes_seen"] == NUM_CLASSES
    assert len(adaptive_asked) <= BUDGET and len(set(adaptive_asked)) == len(adaptive_asked)  # never asked twice
    assert adaptive.counts["queries"] == len(adaptive_asked) and adaptive.extra["queries_total"] <= BUDGET
    histogram = adaptive.extra["label_histogram"]
    assert histogram[1] > plain.extra["label_histogram"][1] and histogram[3] > plain.extra["label_histogram"][3]
    labeled = {r["id"]: r["label"] for r in read_records(str(tmp_path / "adaptive"), LABELED_IMAGE)}
    assert len(labeled) == len(adaptive_asked)
    assert all(classes[i] == label for i, label in labeled.items())  # the oracle's own hard labels
    info = adaptive.extra["adaptive"]
    assert info["seed_set"] == 40 and info["rounds_run"] >= 1
    assert sum(r["asked"] for r in info["rounds"]) + info["seed_set"] == len(adaptive_asked)


def test_the_family_mixture_draws_the_seed_set_over_the_transformed_pool(tmp_path):
    """--adaptive_mixture end to end: the pool's families are read from the records, probed equally, recorded.
    A pool of 300 (600 with its inverted family) is enough here: this is the mixture's bookkeeping, not rarity."""
    import dataclasses

    images, _ = _pool(str(tmp_path / "pool"), 300)
    config = _config(images, "", str(tmp_path / "mixture"), "adaptive", pool_transforms=["invert"])
    config.adaptive = dataclasses.replace(ADAPTIVE, mixture=True, probe_fraction=0.1, rounds=1)
    with PredictServer(mean_class) as server:
        config.oracle = OracleSpec(server.url, num_classes=NUM_CLASSES)
        manifest = run(config)
    families = manifest.extra["adaptive"]["family_mixture"]
    assert sorted(families) == ["invert", "none"]
    assert [families[f]["probe"] for f in ("invert", "none")] == [10, 10]  # 10% of 200, equal shares
    assert sum(families[f]["seed_set"] for f in families) == 40 == manifest.extra["adaptive"]["seed_set"]
    assert sum(families[f]["weight"] for f in families) == pytest.approx(1.0, abs=1e-3)
    assert manifest.extra["adaptive"]["config"]["mixture"] is True
    assert manifest.extra["queries_total"] <= BUDGET


def test_adaptive_needs_a_budget_and_a_class_count(pool, tmp_path):
    images, _ = pool
    with pytest.raises(CopycatError, match="needs --max_queries"):
        run(StealLabelsConfig(images=images, oracle=OracleSpec("http://127.0.0.1:9/v1/models/m:predict"),
                              output=str(tmp_path / "a"), strategy="adaptive"))
    with PredictServer(mean_class) as server:
        with pytest.raises(CopycatError, match="--num_classes"):
            run(StealLabelsConfig(images=images, oracle=OracleSpec(server.url), output=str(tmp_path / "b"),
                                  max_queries=20, strategy="adaptive"))
        assert not server.received_ids


def test_killed_adaptive_run_resumes_without_asking_an_answered_image_again(pool, tmp_path):
    """kill -9 while the oracle holds a batch of the second round; the rerun finishes within the budget."""
    images, classes = pool
    output = str(tmp_path / "sl")
    hold_at = 7  # seed set: requests 1-4; rounds start at request 5
    arguments = [f"--images={images}", f"--output={output}", "--batch_size=10", f"--num_classes={NUM_CLASSES}",
                 f"--max_queries={BUDGET}", "--strategy=adaptive", "--adaptive_rounds=6", "--adaptive_explore=0.3",
                 "--adaptive_input_size=8", "--adaptive_epochs=12"]
    with killed_while_held(mean_class, hold_at, arguments) as server:
        ledger = Ledger(os.path.join(output, "ledger"), f"rest:{server.url}")
        answered_before = set(ledger.read_answers())
        asked_before = {i for batch in server.received_ids for i in batch}
        in_flight = set(server.received_ids[hold_at - 1])
        before = len(server.received_ids)
        assert len(answered_before) == 10 * (hold_at - 1)

        manifest = run(_config(images, server.url, output, "adaptive"))
        asked_after = [i for batch in server.received_ids[before:] for i in batch]

    assert not answered_before & set(asked_after)  # nothing the ledger held was asked again
    assert asked_before & set(asked_after) <= in_flight  # only the batch in flight was asked twice
    assert set(asked_after[:len(in_flight)]) == in_flight  # ... and it was asked first
    assert ledger.spent() == len(asked_before) + len(asked_after) <= BUDGET  # never over the budget
    assert manifest.counts["labeled"] == len(answered_before | set(asked_after))
    assert manifest.extra["queries_total"] == ledger.spent()
    labeled = {r["id"]: r["label"] for r in read_records(output, LABELED_IMAGE)}
    assert all(classes[i] == label for i, label in labeled.items())


def test_a_wrong_class_count_is_one_clear_error(pool, tmp_path):
    images, _ = pool
    with PredictServer(mean_class) as server:
        with pytest.raises(CopycatError, match="the oracle answered class 4, but --num_classes is 3"):
            run(StealLabelsConfig(images=images, oracle=OracleSpec(server.url, num_classes=3), batch_size=50,
                                  output=str(tmp_path / "sl"), max_queries=300, strategy="adaptive", adaptive=ADAPTIVE))


class _Index:
    def __init__(self, count):
        self.ids = [f"id{i}" for i in range(count)]

    def id(self, position):
        return self.ids[position]

    def images(self, positions):
        return [b"" for _ in positions]


class _Oracle:
    def classify(self, images):
        return np.zeros(len(images), dtype=np.int64)


def test_the_budget_holds_without_a_ledger_lock(tmp_path):
    """On an object store the ledger cannot lock; the launcher's own cap must still stop at --max_queries."""
    from copycat_tf.adaptive.rounds import _Querier

    Ledger(str(tmp_path), "oracle").reserve("earlier", [f"old{i}" for i in range(90)], None, None)  # an earlier run
    ledger = Ledger(str(tmp_path), "oracle")
    ledger._local = False  # behave as on gs://: no file lock, no running total
    labels = np.full(50, -1, dtype=np.int64)
    querier = _Querier(_Index(50), _Oracle(), ledger, "run", max_queries=100, batch_size=4, labels=labels, num_classes=2)
    querier.ask(range(50))
    assert ledger.spent() == 100 and querier.sent == 10 and querier.exhausted
