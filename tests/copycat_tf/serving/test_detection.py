"""The PRADA-style monitor: a synthetic (Jacobian-style) attacker is flagged, a benign client is not."""

import io

import numpy as np
import PIL.Image
import pytest
from sklearn.datasets import load_digits

from copycat_tf.serving.detection import ExtractionMonitor, features


def _png(pixels) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((32, 32), PIL.Image.Resampling.BILINEAR) \
        .save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.images * 16, data.target


def _synthetic_attacker(digits, count, seed=0):
    """Papernot-style synthetic queries: one seed image per class, then generations of small signed steps."""
    images, targets = digits
    rng = np.random.default_rng(seed)
    current = [images[np.flatnonzero(targets == c)[0]] for c in range(10)]
    labels = list(range(10))
    queries = [_png(x) for x in current]
    while len(queries) < count:
        stepped = [np.clip(x + 0.1 * 255 * np.sign(rng.normal(size=x.shape)), 0, 255) for x in current]
        queries += [_png(x) for x in stepped]
        current, labels = current + stepped, labels + labels
    return queries[:count], labels[:count]


def test_a_synthetic_attacker_is_flagged_and_a_benign_client_is_not(digits):
    images, targets = digits
    order = np.random.default_rng(1).permutation(len(images))[:400]
    monitor = ExtractionMonitor(delta=0.9, min_queries=100)
    benign = monitor.observe("benign", [_png(images[i]) for i in order], targets[order])
    attack, labels = _synthetic_attacker(digits, 400)
    flagged = monitor.observe("attacker", attack, labels)
    report = monitor.report()
    assert benign == [None] * 400 and report["benign"]["flagged_at"] is None and report["benign"]["shapiro_w"] > 0.95
    at = report["attacker"]["flagged_at"]
    assert at is not None and 100 < at <= 200 and report["attacker"]["shapiro_w"] < 0.9
    assert flagged == [at if i + 1 >= at else None for i in range(400)]  # flagged from that query on, with its count
    assert report["benign"]["queries"] == report["attacker"]["queries"] == 400
    assert monitor.blocked("attacker") is None  # flag only, unless block=True


def test_keys_are_watched_apart_and_block_refuses_a_flagged_key(digits):
    attack, labels = _synthetic_attacker(digits, 300)
    monitor = ExtractionMonitor(delta=0.9, min_queries=100, block=True)
    for start in range(0, 300, 50):  # requests of 50; the other key sends the same number in between
        monitor.observe("mallory", attack[start:start + 50], labels[start:start + 50])
        monitor.observe("carol", [_png(x) for x in digits[0][start:start + 50]], digits[1][start:start + 50])
    assert monitor.blocked("mallory") == monitor.report()["mallory"]["flagged_at"] is not None
    assert monitor.blocked("carol") is None and monitor.blocked("nobody") is None


def test_distances_are_between_small_grayscale_versions():
    white, black = _png(np.full((8, 8), 255.0)), _png(np.zeros((8, 8)))
    assert np.linalg.norm(features(white) - features(black)) == pytest.approx(16.0)  # sqrt(256 pixels × 1²)
    assert features(b"not an image") is None
    monitor = ExtractionMonitor(min_queries=3)
    monitor.observe("k", [b"junk", white, white, black], [0, 0, 0, 0])
    assert monitor.report()["k"]["queries"] == 4  # counted, though the undecodable one adds no distance
