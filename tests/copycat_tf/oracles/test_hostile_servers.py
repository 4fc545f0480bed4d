"""The REST client against hostile servers on loopback (issue #12, findings 3-5).

Answers are validated before the ledger records them; credentials go only to the origin of
--oracle and are never shown; a request has a total deadline; retries are paid for in the ledger and
never push spend past --max_queries; two runs on one ledger never pay for the same image twice.
"""

import base64
import dataclasses
import json
import pickle
import socket
import threading
import time

import numpy as np
import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.ledger import Ledger
from copycat_tf.oracles import OracleError, OracleSpec, open_oracle
from copycat_tf.oracles.base import scrub_url
from tests.conftest import make_pixels
from tests.copycat_tf.oracles.test_saved_model import _png
from tests.predict_server import PredictServer, RawServer, http_response
from tfrecords_schema import content_id

KEY = "sk-live-0123456789abcdef"


def _label(pixels: np.ndarray) -> int:
    return int(pixels.mean() * 7) % 5


@pytest.fixture(scope="module")
def images():
    pixels = [make_pixels(i, 8, 8) for i in range(24)]
    return [_png(p) for p in pixels], [content_id(p) for p in pixels]


def _oracle(url, **options):
    oracle = open_oracle(OracleSpec(url, **{"max_retries": 0, "timeout_s": 2.0, **options}))
    oracle._backoff = 0.01
    return oracle


def _raw(respond):
    return RawServer(lambda number, request: respond(number, request) if callable(respond) else respond)


# -- finding 3: answers are validated before they are recorded -------------------------------------

HOSTILE = {
    "NaN scores": (http_response(200, '{"predictions": [[NaN, 0.5, 0.1], [0.2, 0.3, 0.5]]}'), None, "non-finite"),
    "infinite logits": (http_response(200, '{"predictions": [[Infinity, 0, 0], [0, 1, 0]]}'), None, "non-finite"),
    "class beyond --num_classes": (http_response(200, {"predictions": [999, 1]}), 5,
                                   "answered class 999, but --num_classes is 5"),
    "negative class": (http_response(200, {"predictions": [-1, 2]}), None, "answered class -1"),
    "class too big for 64 bits": (http_response(200, '{"predictions": [99999999999999999999999, 1]}'), None, "64 bits"),
    "score width is not --num_classes": (http_response(200, {"predictions": [[0.1, 0.9], [0.8, 0.2]]}), 5,
                                         "2 scores per image, but --num_classes is 5"),
    "ragged score rows": (http_response(200, {"predictions": [[0.1, 0.9], [0.2, 0.3, 0.5]]}), None, "ragged"),
    "one prediction for two images": (http_response(200, {"predictions": [1]}), None, "1 predictions for 2 images"),
    "strings": (http_response(200, {"predictions": ["cat", "dog"]}), None, "not str"),
    "booleans": (http_response(200, {"predictions": [True, False]}), None, "not bool"),
    "a JSON list body": (http_response(200, [1, 2]), None, "not an object with 'predictions' or 'outputs'"),
    "an object without predictions": (http_response(200, {"error": "model not loaded"}), None,
                                      "without 'predictions' or 'outputs' \\(it says: model not loaded\\)"),
    "predictions not a list": (http_response(200, {"predictions": 3}), None, "is a int, not a list"),
    "invalid UTF-8": (http_response(200, b'{"predictions": [1, 2]}\xff\xfe'), None, "not UTF-8"),
    "not JSON": (http_response(200, b"<html>hello</html>"), None, "not JSON"),
    "a non-HTTP status line": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None, "not HTTP"),
    "an unknown status": (http_response(600, {"predictions": [1, 2]}, reason="Odd"), None, "HTTP 600"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_an_invalid_answer_is_one_clear_error_and_nothing_is_recorded(case, images, tmp_path):
    encoded, ids = images
    reply, num_classes, message = HOSTILE[case]
    ledger = Ledger(str(tmp_path), "o")
    with _raw(reply) as server:
        oracle = _oracle(server.url, num_classes=num_classes)
        allowed = ledger.reserve("run", ids[:2], None, None)  # as the pipeline does: spend, send, record
        with pytest.raises(OracleError, match=message) as error:
            ledger.record(allowed, oracle.classify(encoded[:2]))
    assert isinstance(error.value, CopycatError)  # the binaries print it as one line, exit 2
    text = str(error.value)
    assert "\n" not in text and f"oracle at {server.url}, batch 1" in text and f"first image id {ids[0]}" in text
    assert ledger.read_answers() == {}
    assert len(server.requests) == 1  # an invalid answer is not retried: it would be paid for again


def test_valid_answers_in_every_protocol_form(images):
    encoded, _ = images
    forms = [{"predictions": [3, 0]}, {"predictions": [[3], [0]]}, {"predictions": [[0, 0, 0, 1], [1, 0, 0, 0]]},
             {"predictions": [{"class_id": 3}, {"class_id": 0}]}, {"outputs": [3, 0]},
             {"outputs": {"class_id": [3, 0], "probabilities": [[0, 0, 0, 1], [1, 0, 0, 0]]}}]
    for form in forms:
        with _raw(http_response(200, form)) as server:
            np.testing.assert_array_equal(_oracle(server.url).classify(encoded[:2]), [3, 0])


def test_a_rerun_after_an_invalid_answer_asks_only_what_was_never_answered(images, tmp_path):
    """A -1 used to be stored, then looked unanswered to the adaptive rounds and was paid for on every rerun."""
    encoded, ids = images
    ledger = Ledger(str(tmp_path), "o")
    with _raw(http_response(200, {"predictions": [-1, 2]})) as server:
        ledger.reserve("run", ids[:2], None, None)
        with pytest.raises(OracleError):
            _oracle(server.url).classify(encoded[:2])
    assert ledger.read_answers() == {} and ledger.pending_ids() == ids[:2]


# -- finding 4: the wire ------------------------------------------------------------------------

def test_credentials_never_follow_a_redirect_to_another_origin(images, monkeypatch):
    encoded, _ = images
    monkeypatch.setenv("COPYCAT_ORACLE_API_KEY", KEY)
    with _raw(http_response(200, {"predictions": [1, 1]})) as elsewhere:
        with _raw(http_response(302, b"", reason="Found", headers={"Location": elsewhere.url})) as server:
            with pytest.raises(OracleError, match=f"redirect to {elsewhere.origin}; copycat does not follow redirects"):
                _oracle(server.url, max_retries=2).classify(encoded[:2])
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"  # the key went where it was given
    assert len(server.requests) == 1 and elsewhere.requests == []  # and nowhere else


def test_an_error_body_that_echoes_the_key_is_scrubbed(images, monkeypatch):
    encoded, _ = images
    monkeypatch.setenv("COPYCAT_ORACLE_API_KEY", KEY)
    body = {"error": f"key {KEY} is revoked", "received": f"Bearer {KEY}"}
    with _raw(http_response(401, body, reason=f"Unauthorized {KEY}")) as server:
        with pytest.raises(OracleError, match="refused the request: HTTP 401") as error:
            _oracle(server.url).classify(encoded[:2])
    assert KEY not in str(error.value) and "key *** is revoked" in str(error.value)


SECRET_URLS = [
    "{origin}/v1/models/target:predict?api_key={key}&version=2",
    "{origin}/v1/models/target:predict?version=2&X-Amz-Signature={key}&access_token={key}",
    "http://alice:{key}@127.0.0.1:{port}/v1/models/target:predict",
]


@pytest.mark.parametrize("template", SECRET_URLS)
def test_credentials_in_the_url_are_sent_but_never_shown(template, images):
    encoded, _ = images
    with _raw(lambda n, r: http_response(200, {"predictions": [1, 1]}) if n == 1 else
              http_response(403, {"error": f"denied: {r['target']} {r['headers'].get('authorization')}"})) as server:
        url = template.format(origin=server.origin, port=server.port, key=KEY)
        spec = OracleSpec(url, max_retries=0)
        shown = [spec.target, repr(spec), str(spec), json.dumps(dataclasses.asdict(spec), default=str)]
        oracle = open_oracle(spec)
        shown.append(json.dumps(oracle.describe()))
        np.testing.assert_array_equal(oracle.classify(encoded[:2]), [1, 1])
        with pytest.raises(OracleError) as error:  # the server echoes what it received
            oracle.classify(encoded[:2])
        shown.append(str(error.value))
    assert all(KEY not in text for text in shown), shown
    assert "***" in spec.target and spec.target == scrub_url(url)
    assert pickle.loads(pickle.dumps(spec)).url == url  # a Beam worker still reaches the oracle
    assert dataclasses.replace(spec, num_classes=3).url == url
    request = server.requests[0]
    if "alice" in url:
        assert request["headers"]["authorization"] == "Basic " + base64.b64encode(f"alice:{KEY}".encode()).decode()
    else:
        assert KEY in request["target"]  # the query is sent as given


def test_scrub_url_keeps_what_is_not_a_secret():
    assert scrub_url("https://h:8501/v1/models/m:predict?version=2&signature_name=serving_default") == \
        "https://h:8501/v1/models/m:predict?version=2&signature_name=serving_default"
    assert scrub_url("https://u:p@h/p?key=1&token=2&sig=3&mode=x#frag") == "https://***@h/p?key=***&token=***&sig=***&mode=x"
    assert scrub_url("runs/target/export") == "runs/target/export"


def _only_proxy(monkeypatch, name, value):
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy",
                     "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(name, value)


def test_an_http_proxy_from_the_environment_is_used(images, monkeypatch):
    """urllib honoured http_proxy; the client that replaced it does too (its credentials stay hidden)."""
    encoded, _ = images
    with _raw(http_response(200, {"predictions": [2, 4]})) as proxy:
        _only_proxy(monkeypatch, "http_proxy", f"http://bob:{KEY}@127.0.0.1:{proxy.port}")
        oracle = _oracle("http://oracle.invalid:8501/v1/models/target:predict")
        np.testing.assert_array_equal(oracle.classify(encoded[:2]), [2, 4])
    request = proxy.requests[0]
    assert request["method"] == "POST" and request["target"] == "http://oracle.invalid:8501/v1/models/target:predict"
    assert request["headers"]["proxy-authorization"] == "Basic " + base64.b64encode(f"bob:{KEY}".encode()).decode()


def test_https_goes_through_a_proxy_tunnel_and_a_refused_tunnel_is_one_error(images, monkeypatch):
    encoded, _ = images
    with _raw(http_response(403, b"", reason="Forbidden")) as proxy:
        _only_proxy(monkeypatch, "https_proxy", proxy.origin)
        with pytest.raises(OracleError, match="the proxy refused a tunnel to the oracle"):
            _oracle("https://oracle.invalid/v1/models/target:predict", max_retries=2).classify(encoded[:2])
    assert [r["method"] for r in proxy.requests] == ["CONNECT"] and proxy.requests[0]["target"] == "oracle.invalid:443"


# -- finding 5: deadlines, paid retries ----------------------------------------------------------

DRIP_BODY = json.dumps({"predictions": [1, 1]}).ljust(60).encode()
DRIPS = {
    "body": [(f"HTTP/1.1 200 OK\r\nContent-Length: {len(DRIP_BODY)}\r\n\r\n".encode(), 0)]
    + [(DRIP_BODY[i:i + 1], 0.05) for i in range(len(DRIP_BODY))],
    "status line and headers": [(byte.to_bytes(1, "big"), 0.05) for byte in
                                f"HTTP/1.1 200 OK\r\nX-Pad: {'x' * 40}\r\nContent-Length: {len(DRIP_BODY)}\r\n\r\n".encode()]
    + [(DRIP_BODY, 0)],
}


@pytest.mark.parametrize("where", sorted(DRIPS))
def test_a_slow_drip_is_cut_at_the_total_deadline(where, images):
    """One byte every 0.05 s for 3 s: each read is quick, the request is not; --oracle_timeout bounds it in all."""
    encoded, _ = images
    with _raw(DRIPS[where]) as server:
        oracle = _oracle(server.url, timeout_s=0.5, max_retries=1)
        started = time.monotonic()
        with pytest.raises(OracleError, match="no complete answer within --oracle_timeout=0.5s"):
            oracle.classify(encoded[:2])
        took = time.monotonic() - started
    assert len(server.requests) == 2 and took < 2.5  # two tries of 0.5 s, well before one whole drip (3 s)


def _steal(oracle, ledger, ids, encoded, batch, max_queries, run="run"):
    """What the pipeline and the adaptive rounds do per batch: reserve, send, record."""
    for start in range(0, len(ids), batch):
        allowed = ledger.reserve(run, ids[start:start + batch], max_queries, None)
        if not allowed:
            return
        ledger.record(allowed, oracle.classify(encoded[start:start + len(allowed)]))


def test_retries_are_paid_for_and_never_pass_max_queries(images, tmp_path):
    encoded, ids = images
    ledger = Ledger(str(tmp_path), "o")
    with PredictServer(_label, fail=lambda n: 503 if n % 2 else None) as server:  # every batch fails once
        _steal(_oracle(server.url, max_retries=3), ledger, ids, encoded, batch=4, max_queries=16)
    received = sum(len(batch) for batch in server.received_ids)
    assert received == 16 and ledger.spent() == 16  # the retries are part of the budget
    assert len(ledger.read_answers()) == 8


def test_a_retry_the_budget_cannot_pay_for_is_not_made(images, tmp_path):
    encoded, ids = images
    ledger = Ledger(str(tmp_path), "o")
    with PredictServer(_label, fail=lambda n: 503) as server:
        with pytest.raises(OracleError, match="retrying would send these 4 images again, but --max_queries=6 has 2 left"):
            _steal(_oracle(server.url, max_retries=3), ledger, ids, encoded, batch=4, max_queries=6)
    assert sum(len(batch) for batch in server.received_ids) == 4 and ledger.spent() == 4


def test_a_request_that_never_left_is_retried_without_paying_again(images, tmp_path, monkeypatch):
    encoded, ids = images
    real = socket.create_connection
    calls = []

    def refused_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionRefusedError("refused")
        return real(*args, **kwargs)

    ledger = Ledger(str(tmp_path), "o")
    with PredictServer(_label) as server:
        oracle = _oracle(server.url, max_retries=2)
        monkeypatch.setattr(socket, "create_connection", refused_once)
        _steal(oracle, ledger, ids[:4], encoded[:4], batch=4, max_queries=4)
    assert oracle.retries == 1 and ledger.spent() == 4 and len(ledger.read_answers()) == 4


def test_two_runs_with_the_same_seed_pay_once_per_image(images, tmp_path):
    """Two runs start together on one ledger and walk the same images in the same (seeded) order."""
    encoded, ids = images
    with PredictServer(_label, answer_delay_s=0.05) as server:
        runs = [threading.Thread(target=_steal, args=(_oracle(server.url), Ledger(str(tmp_path), "o"), ids, encoded,
                                                      4, None, f"run-{n}")) for n in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
    received = [i for batch in server.received_ids for i in batch]
    assert len(received) == len(set(received)) == len(ids)  # every image paid for once, none twice
    assert Ledger(str(tmp_path), "o").spent() == len(received)


# -- the same through the labeling pipeline --------------------------------------------------------

@pytest.mark.slow  # a whole Beam pipeline: several seconds
def test_steal_labels_keeps_the_budget_through_retries_and_never_shows_the_key(tmp_path, caplog):
    """--oracle=URL?api_key=KEY, every batch failing once, --max_queries=8: 8 images reach the server, and
    neither the manifest nor the log holds the key."""
    from beam_pipelines.steal_labels import StealLabelsConfig, run
    from tests.conftest import image_record
    from tfrecords_schema import IMAGE, Manifest, write_manifest, write_shards

    images = str(tmp_path / "npdd")
    write_shards(images, IMAGE, [image_record(i, 8, 8) for i in range(12)], num_shards=1)
    write_manifest(images, Manifest(stage="build_npdd", record_kind="image", counts={"kept": 12}))
    caplog.set_level("DEBUG")
    with PredictServer(_label, fail=lambda n: 503 if n % 2 else None) as server:
        spec = OracleSpec(f"{server.url}?api_key={KEY}", num_classes=5, max_retries=2)
        manifest = run(StealLabelsConfig(images=images, oracle=spec, output=str(tmp_path / "sl"), batch_size=4,
                                         max_queries=8))
    assert sum(len(batch) for batch in server.received_ids) == 8
    assert manifest.counts["queries"] == 8 and manifest.counts["labeled"] == 4  # a retry is a query
    written = (tmp_path / "sl" / "manifest.json").read_text()
    assert KEY not in written and "api_key=***" in written
    assert KEY not in caplog.text
