"""The per-oracle family mixture: the weights against a brute-force search, and the seed set it draws."""

import itertools

import numpy as np
import pytest

from copycat_tf.adaptive import mixture
from copycat_tf.adaptive.config import AdaptiveConfig
from copycat_tf.adaptive.rounds import _Querier, _resume_and_seed
from copycat_tf.adaptive.selection import apportion
from copycat_tf.errors import CopycatError
from copycat_tf.ledger import Ledger


def test_family_of_reads_the_transform_variant():
    assert mixture.family_of("transform:grayscale+invert") == "grayscale+invert"
    assert mixture.family_of("bundled:sample_photos") == mixture.ORIGINAL


def test_entropy_by_hand():
    assert mixture.entropy([5, 5]) == pytest.approx(np.log(2))
    assert mixture.entropy([3, 0, 1]) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert mixture.entropy([0, 0]) == 0.0


def _shrunk(histograms):
    """The shrinkage the mixture applies (a prior worth K labels, towards the pooled histogram)."""
    h = np.asarray(histograms, np.float64)
    k = h.shape[1]
    pooled = (h.sum(axis=0) + 1.0) / (h.sum() + k)
    return (h + k * pooled) / (h.sum(axis=1, keepdims=True) + k)


@pytest.mark.parametrize("histograms", [
    [[40, 0, 0, 0], [10, 10, 10, 10], [0, 30, 5, 5]],  # one family answers one class only
    [[20, 0, 0], [0, 20, 0], [0, 0, 20]],  # each family its own class: equal weights
    [[30, 10, 0, 0, 0], [0, 0, 10, 30, 0], [8, 8, 8, 8, 8]],
])
def test_weights_maximize_the_entropy_of_the_expected_histogram(histograms):
    floor = 0.2
    weights = mixture.max_entropy_mixture(histograms, floor=floor)
    assert weights.sum() == pytest.approx(1.0) and (weights >= floor / len(weights) - 1e-12).all()
    found = (weights - floor / len(weights)) / (1 - floor)  # the optimum before the floor
    p = _shrunk(histograms)
    grid = [np.array(w) / 200 for w in itertools.product(range(201), repeat=2) if sum(w) <= 200]
    best = max((np.array([a, b, 1 - a - b]) for a, b in grid), key=lambda w: mixture.entropy(w @ p))
    assert mixture.entropy(found @ p) >= mixture.entropy(best @ p) - 1e-4  # as good as the best grid point
    assert np.abs(found - best).max() < 0.02


def test_a_family_that_answers_one_class_gets_little():
    weights = mixture.max_entropy_mixture([[50, 0, 0, 0], [12, 13, 12, 13]])
    assert weights[1] > 0.85 and weights[0] == pytest.approx(0.1, abs=0.02)


class _Index:
    """A pool of three families: originals, ``gray`` and ``lines`` (200 images each)."""

    def __init__(self):
        self.ids = [f"img{i:04d}" for i in range(600)]
        self.sources = ["bundled:photos"] * 200 + ["transform:gray"] * 200 + ["transform:lines"] * 200

    def __len__(self):
        return len(self.ids)


class _Catalog:
    def __init__(self):
        self.index = _Index()

    def __len__(self):
        return len(self.index)

    def id(self, position):
        return self.index.ids[position]

    def images(self, positions):
        return [str(p).encode() for p in positions]


class _Oracle:
    """Photos and gray images are all class 0; the line drawings spread over the four classes."""

    def __init__(self):
        self.asked = []

    def classify(self, images):
        positions = [int(i) for i in images]
        self.asked.extend(positions)
        return np.array([0 if p < 400 else p % 4 for p in positions], np.int64)


def _seed(tmp_path, oracle, config, budget=200):
    catalog = _Catalog()
    ledger = Ledger(str(tmp_path / "ledger"), "oracle")
    answers = ledger.read_answers()  # as the rounds start: what the ledger holds is known
    labels = np.array([answers.get(catalog.id(p), -1) for p in range(len(catalog))], np.int64)
    querier = _Querier(catalog, oracle, ledger, "run", budget, 16, labels, 4)
    size, report = _resume_and_seed(catalog, querier, ledger, budget, seed=3, config=config)
    return size, report, querier, ledger


def test_the_seed_set_follows_the_oracles_answers_and_resumes_the_same(tmp_path):
    config = AdaptiveConfig(seed_fraction=0.5, probe_fraction=0.15, mixture=True)
    oracle = _Oracle()
    size, report, querier, ledger = _seed(tmp_path, oracle, config)
    assert size == 100 and ledger.spent() == 100 and len(set(oracle.asked)) == 100
    assert [report[f]["probe"] for f in ("gray", "lines", "none")] == [10, 10, 10]  # 15% of 200, equal shares
    assert report["lines"]["weight"] > 0.8 and report["lines"]["probe_histogram"] != [10, 0, 0, 0]
    # The rest of the seed set (100 - 30) by the weights of the probe's answers: the line drawings get most.
    names = ("gray", "lines", "none")
    weights = np.round(mixture.max_entropy_mixture([report[f]["probe_histogram"] for f in names]), 9)
    expected = 10 + apportion(70, weights)
    by_family = np.bincount(np.array(oracle.asked) // 200, minlength=3)  # none, gray, lines
    assert [by_family[1], by_family[2], by_family[0]] == expected.tolist() == [report[f]["seed_set"] for f in names]
    assert by_family[2] > 60
    # A second run on the same ledger asks nothing again and draws the same seed set.
    again = _Oracle()
    size2, report2, _, _ = _seed(tmp_path, again, config)
    assert again.asked == [] and report2 == report and size2 == size


def test_without_the_mixture_the_seed_set_ignores_families(tmp_path):
    oracle = _Oracle()
    _, report, _, ledger = _seed(tmp_path, oracle, AdaptiveConfig(seed_fraction=0.5))
    by_family = np.bincount(np.array(oracle.asked) // 200, minlength=3)
    assert report is None and ledger.spent() == 100 and by_family.max() < 50


def test_the_probe_cannot_exceed_the_seed_set():
    with pytest.raises(CopycatError, match="adaptive_probe_fraction"):
        AdaptiveConfig(seed_fraction=0.1, probe_fraction=0.2, mixture=True).check()


class _Dying(_Oracle):
    """Answers ``left`` images, then the process 'dies' in the middle of a batch."""

    def __init__(self, left):
        super().__init__()
        self.left = left

    def classify(self, images):
        if self.left < len(images):
            raise KeyboardInterrupt("killed")
        self.left -= len(images)
        return super().classify(images)


@pytest.mark.parametrize("dies_after", [16, 48])  # in the probe (30 images), and after it, in the weighted rest
def test_a_run_killed_during_the_seed_set_resumes_to_the_same_seed_set(tmp_path, dies_after):
    config = AdaptiveConfig(seed_fraction=0.5, probe_fraction=0.15, mixture=True)
    whole = _Oracle()
    _, expected, _, _ = _seed(tmp_path / "whole", whole, config)
    with pytest.raises(KeyboardInterrupt):
        _seed(tmp_path / "killed", _Dying(dies_after), config)
    before = Ledger(str(tmp_path / "killed" / "ledger"), "oracle")
    in_flight, answered_before = len(before.pending_ids()), len(before.read_answers())
    assert in_flight > 0 and dies_after - 16 < answered_before <= dies_after  # whole batches of 16
    resumed = _Oracle()
    _, report, _, ledger = _seed(tmp_path / "killed", resumed, config)
    answered = set(Ledger(str(tmp_path / "killed" / "ledger"), "oracle").read_answers())
    assert report == expected  # the same probe answers, weights and seed set
    assert answered == {f"img{p:04d}" for p in whole.asked}  # the same images
    assert len(resumed.asked) == len(set(resumed.asked)) == 100 - answered_before  # nothing answered asked again
    assert ledger.spent() == 100 + in_flight  # the batch in flight may have reached the oracle: paid again
