"""The REST oracle against a real HTTP server on loopback: retries, limits, keys, failures."""

import threading

import numpy as np
import pytest

from copycat_tf.oracles import OracleError, OracleSpec, open_oracle
from copycat_tf.oracles import rest
from tests.conftest import make_pixels
from tests.copycat_tf.oracles.test_saved_model import _png
from tests.predict_server import PredictServer


def _label(pixels: np.ndarray) -> int:
    return int(pixels.mean() * 7) % 5


@pytest.fixture(scope="module")
def images():
    pixels = [make_pixels(i, 8, 8) for i in range(24)]
    return [_png(p) for p in pixels], np.array([_label(p) for p in pixels])


def _oracle(url, **options):
    return open_oracle(OracleSpec(url, **{"max_retries": 4, **options}))


def test_labels_everything_through_injected_failures(images):
    encoded, expected = images
    failures = {1: 503, 2: 429, 4: 500, 5: "slow", 7: 502}
    with PredictServer(_label, fail=failures.get, slow_s=1.5) as server:
        oracle = _oracle(server.url, timeout_s=0.5)
        oracle._backoff = 0.01
        labels = np.concatenate([oracle.classify(encoded[i:i + 6]) for i in range(0, len(encoded), 6)])
    np.testing.assert_array_equal(labels, expected)
    assert oracle.retries == len(failures)  # each failure cost exactly one retry, no more
    assert server.requests == 4 + len(failures)


def test_gives_up_after_bounded_retries(images):
    encoded, _ = images
    with PredictServer(_label, fail=lambda n: 503) as server:
        oracle = _oracle(server.url, max_retries=3)
        oracle._backoff = 0.01
        with pytest.raises(OracleError, match="unreachable after 4 tries .*HTTP 503"):
            oracle.classify(encoded[:2])
    assert server.requests == 4


def test_client_errors_are_not_retried(images):
    encoded, _ = images
    with PredictServer(_label, fail=lambda n: 400) as server:
        with pytest.raises(OracleError, match="refused the request: HTTP 400"):
            _oracle(server.url).classify(encoded[:2])
    assert server.requests == 1


def test_unreachable_server_is_one_clear_error(images):
    encoded, _ = images
    with PredictServer(_label) as server:
        url = server.url
    oracle = _oracle(url, max_retries=1)
    oracle._backoff = 0.01
    with pytest.raises(OracleError, match="unreachable after 2 tries"):
        oracle.classify(encoded[:1])


def test_api_key_comes_from_the_environment_and_is_never_shown(images, monkeypatch):
    encoded, expected = images
    monkeypatch.setenv("MY_ORACLE_KEY", "s3cret-key")
    with PredictServer(_label, api_key="s3cret-key") as server:
        oracle = _oracle(server.url, api_key_env="MY_ORACLE_KEY")
        np.testing.assert_array_equal(oracle.classify(encoded[:4]), expected[:4])
    assert "s3cret" not in oracle.fingerprint and "s3cret" not in repr(oracle.describe())
    with PredictServer(_label, api_key="s3cret-key") as server:
        with pytest.raises(OracleError, match="HTTP 401"):
            _oracle(server.url, api_key_env="NO_SUCH_VARIABLE").classify(encoded[:1])


def test_named_outputs_are_read(images):
    encoded, expected = images
    with PredictServer(_label, output="class_id") as server:
        np.testing.assert_array_equal(_oracle(server.url).classify(encoded[:5]), expected[:5])


def test_concurrency_limit_holds_across_threads(images):
    encoded, _ = images
    with PredictServer(_label, answer_delay_s=0.2) as server:
        oracle = _oracle(server.url, concurrency=2)
        threads = [threading.Thread(target=oracle.classify, args=(encoded[i:i + 2],)) for i in range(0, 12, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert server.requests == 6
    assert server.max_in_flight == 2


def test_queries_per_second_limit():
    clock = {"now": 0.0, "slept": 0.0}

    def sleep(seconds):
        clock["now"] += seconds
        clock["slept"] += seconds

    limiter = rest._RateLimiter(10.0, clock=lambda: clock["now"], sleep=sleep)  # 10 images/s, bursts of 10
    for _ in range(5):
        limiter.acquire(6)
    # 30 images at 10/s with a first burst of 10: 2 seconds of waiting in all
    assert clock["slept"] == pytest.approx(2.0)
