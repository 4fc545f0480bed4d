"""copycat-serve on loopback: the REST oracle client attacks it unchanged, keys, limits, defenses, concurrency."""

import base64
import concurrent.futures
import json
import signal
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.oracles import OracleSpec, open_oracle
from copycat_tf.serving.config import ServeConfig
from copycat_tf.serving.model import load_predict
from copycat_tf.serving.server import ServedModel, read_api_keys, start_in_thread
from tests.conftest import image_record
from tests.tiny_oracles import NUM_CLASSES, save_bytes_oracle

KEYS = "# name:secret\nalice:alice-secret\nbob:bob-secret\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = save_bytes_oracle(str(tmp_path_factory.mktemp("oracle") / "export"))
    predict, identity = load_predict(path)
    images = [image_record(i, 16, 16)["image"] for i in range(64)]
    return path, predict, identity, images


@pytest.fixture
def server(model, tmp_path):
    """Start a server with the given options; yields a function returning (url, served)."""
    path, predict, identity, _ = model
    (tmp_path / "keys.txt").write_text(KEYS)
    stops = []

    def start(secret: bytes | None = None, **options):
        config = ServeConfig(model=path, api_keys=str(tmp_path / "keys.txt"), query_log=str(tmp_path / "log.jsonl"),
                             port=0, **options)
        config.validate()
        served = ServedModel(predict, identity, config, read_api_keys(config.api_keys), secret)
        url, stop = start_in_thread(served)
        stops.append(stop)
        return url, served

    yield start
    for stop in stops:
        stop()


def _post(url, images, key="alice-secret"):
    body = json.dumps({"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}).encode()
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {key}",
                                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def _log(tmp_path):
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def test_the_rest_oracle_client_attacks_it_unchanged_and_every_answer_is_logged(model, server, tmp_path, monkeypatch):
    path, predict, _, images = model
    url, served = server()
    monkeypatch.setenv("COPYCAT_ORACLE_API_KEY", "bob-secret")
    remote = open_oracle(OracleSpec(url, num_classes=NUM_CLASSES))
    local = open_oracle(OracleSpec(path))
    np.testing.assert_array_equal(remote.classify(images[:40]), local.classify(images[:40]))
    lines = _log(tmp_path)
    assert len(lines) == 40 and {line["key"] for line in lines} == {"bob"}
    assert [line["class_id"] for line in lines] == local.classify(images[:40]).tolist()
    assert lines[0]["fingerprint"] == served.fingerprint and not lines[0]["defenses"]


def test_keys_models_and_bodies_are_checked(model, server, tmp_path):
    images = model[3]
    url, _ = server()
    assert _post(url, images[:2], key="mallory")[0] == 401
    assert _post(url.replace("/model:", "/other:"), images[:2])[0] == 404
    status, answer, _ = _post(url, [])
    assert status == 400 and "instances" in answer["error"]
    status, answer, headers = _post(url, images[:3])
    assert status == 200 and len(answer["predictions"]) == 3 and headers["X-Copycat-Fingerprint"]
    assert len(answer["predictions"][0]["probabilities"]) == NUM_CLASSES
    assert len(_log(tmp_path)) == 3  # only answered images are logged
    with pytest.raises(CopycatError, match="line 1: write 'name:secret'"):
        (tmp_path / "bad.txt").write_text("nocolon\n")
        read_api_keys(str(tmp_path / "bad.txt"))


def test_top1_and_rounding_answer_the_same_classes(model, server):
    images = model[3]
    bare_url, bare = server()
    url, defended = server(top1=True)
    rounded_url, _ = server(round_to=1)
    plain = _post(bare_url, images)[1]["predictions"]
    top1 = _post(url, images)[1]["predictions"]
    rounded = _post(rounded_url, images)[1]["predictions"]
    assert all(set(p) == {"class_id"} for p in top1)
    assert [p["class_id"] for p in top1] == [p["class_id"] for p in plain] == [p["class_id"] for p in rounded]
    assert all(abs(v * 10 - round(v * 10)) < 1e-6 for p in rounded for v in p["probabilities"])
    assert defended.fingerprint != bare.fingerprint


def test_the_watermark_changes_a_keyed_share_and_the_log_says_which(model, server, tmp_path):
    images = model[3]
    bare_url, _ = server()
    url, _ = server(secret=b"owner secret", watermark_share=0.25)
    plain = [p["class_id"] for p in _post(bare_url, images)[1]["predictions"]]
    marked = [p["class_id"] for p in _post(url, images)[1]["predictions"]]
    again = [p["class_id"] for p in _post(url, images)[1]["predictions"]]
    assert marked == again  # repeatable
    changed = [a != b for a, b in zip(plain, marked)]
    assert 4 <= sum(changed) <= 30  # about a quarter of 64
    logged = [line for line in _log(tmp_path) if line["defenses"]]
    assert len(logged) == 2 * sum(changed) and {line["defenses"][0] for line in logged} == {"watermark"}


def test_the_watermarked_images_are_kept_per_key_as_evidence(model, server, tmp_path):
    import hashlib

    images = model[3]
    url, _ = server(secret=b"owner secret", watermark_share=0.25, watermark_keep=str(tmp_path / "evidence"))
    _post(url, images)
    _post(url, images[:16], key="bob-secret")
    marked = {line["image_sha256"] for line in _log(tmp_path) if line["key"] == "alice" and line["defenses"]}
    kept = {p.stem for p in (tmp_path / "evidence" / "alice").iterdir()}
    assert kept == marked and len(kept) >= 4
    for path in (tmp_path / "evidence" / "alice").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem  # the image bytes themselves
    bob = {line["image_sha256"] for line in _log(tmp_path) if line["key"] == "bob" and line["defenses"]}
    assert {p.stem for p in (tmp_path / "evidence" / "bob").iterdir()} == bob


def test_misinformation_answers_the_least_likely_class_above_its_threshold(model, server):
    images = model[3]
    path, predict, _, _ = model
    probabilities = predict(images)
    url, served = server(misinformation=0.0, top1=True)  # every query whose largest probability is below 1
    answered = [p["class_id"] for p in _post(url, images)[1]["predictions"]]
    unsure = 1 - probabilities.max(axis=1) > 0
    assert unsure.all() and answered == probabilities.argmin(axis=1).tolist()
    assert served.fingerprint != server()[1].fingerprint


def test_prada_flags_and_blocks_a_synthetic_attacker_not_another_key(model, server, tmp_path):
    import io

    import PIL.Image

    rng = np.random.default_rng(0)

    def png(pixels):
        buffer = io.BytesIO()
        PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "PNG")
        return buffer.getvalue()

    start = [rng.integers(0, 256, (16, 16, 3)).astype(np.float64) for _ in range(4)]
    generations = list(start)
    while len(generations) < 160:  # Jacobian-style synthetic queries: small signed steps from a few seeds
        generations += [x + 20 * np.sign(rng.normal(size=x.shape)) for x in generations]
    attack = [png(x) for x in generations[:160]]
    benign = [png(rng.integers(0, 256, (16, 16, 3))) for _ in range(40)]
    url, served = server(prada_delta=0.9, prada_min_queries=30, prada_block=True)
    statuses = [_post(url, attack[i:i + 20])[0] for i in range(0, 160, 20)]
    assert 200 in statuses and statuses[-1] == 403 and statuses == sorted(statuses)  # answered, then refused
    assert _post(url, benign, key="bob-secret")[0] == 200
    with urllib.request.urlopen(url.split(":predict")[0], timeout=30) as response:
        status = json.loads(response.read())
    assert "detection" not in status and "alice" not in json.dumps(status)  # the public page tells no key's state
    detection = served.monitor.report()
    flagged_at = detection["alice"]["flagged_at"]
    assert 30 < flagged_at <= 20 * statuses.count(200) and detection["bob"]["flagged_at"] is None
    marks = [d for line in _log(tmp_path) for d in line["defenses"] if d.startswith("prada:flagged")]
    assert marks == [f"prada:flagged@{flagged_at}"] * (20 * statuses.count(200) - flagged_at + 1)


def test_the_quota_answers_429_with_retry_after_and_the_client_waits_out_a_rate_limit(model, server, tmp_path,
                                                                                      monkeypatch):
    images = model[3]
    url, _ = server(quota=10, quota_window_s=3600)
    status, answer, _ = _post(url, [b"not an image"] * 8)
    assert status == 400 and "could not answer" in answer["error"]  # no answer: the quota is given back
    assert _post(url, images[:8])[0] == 200
    status, answer, headers = _post(url, images[:8])
    assert status == 429 and 3590 <= int(headers["Retry-After"]) <= 3600
    assert _post(url, images[:8], key="bob-secret")[0] == 200  # per key
    # The client stops at once on a wait longer than 5 minutes (a spent quota), naming it.
    monkeypatch.setenv("COPYCAT_ORACLE_API_KEY", "alice-secret")
    with pytest.raises(CopycatError, match="asking to wait 3[56]\\d\\d s"):
        open_oracle(OracleSpec(url, num_classes=NUM_CLASSES, max_retries=3)).classify(images[:8])

    rate_url, _ = server(rate=8.0)
    client = open_oracle(OracleSpec(rate_url, num_classes=NUM_CLASSES, max_retries=5))
    started = time.monotonic()
    for start in range(0, 16, 8):
        client.classify(images[start:start + 8])
    assert time.monotonic() - started >= 0.9  # 16 images at 8 per second, one second's burst: ≥ 1 s of waits
    assert client.retries >= 1  # refused, waited out the Retry-After, answered
    status, answer, headers = _post(rate_url, images[:9], key="bob-secret")  # more than a whole second's allowance
    assert status == 413 and "Retry-After" not in headers
    assert "send smaller requests" in answer["error"] and "(8 images)" in answer["error"]


def test_one_requests_bad_image_fails_only_that_request_and_model_calls_stay_within_max_batch():
    import asyncio

    from copycat_tf.serving.server import Batcher

    sizes = []

    def predict(images):
        sizes.append(len(images))
        if b"bad" in images:
            raise ValueError("cannot decode")
        return np.asarray([[float(len(image)), 0.0] for image in images], np.float32)

    async def main():
        batcher = Batcher(predict, max_batch=4, max_wait_s=0.2)
        batcher.start()
        try:
            return await asyncio.gather(batcher.predict([b"a", b"bb"]), batcher.predict([b"bad"]),
                                        batcher.predict([b"c" * n for n in range(1, 7)]), return_exceptions=True)
        finally:
            await batcher.stop()

    good, bad, large = asyncio.run(main())
    assert good[:, 0].tolist() == [1, 2] and large[:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    assert isinstance(bad, ValueError)
    assert max(sizes) <= 4  # a request of 6 images (and a batch of 9) was split into calls of at most 4


def test_concurrent_clients_are_batched_and_every_answer_is_accounted_for(model, server, tmp_path):
    images = model[3]
    url, served = server(max_wait_ms=20.0)
    expected = [p["class_id"] for p in _post(url, images)[1]["predictions"]]

    def client(number):
        answers = []
        for start in range(0, 16, 4):
            chunk = list(range((number * 4 + start) % 60, (number * 4 + start) % 60 + 4))
            status, answer, _ = _post(url, [images[i] for i in chunk], key="alice-secret" if number % 2 else "bob-secret")
            assert status == 200
            answers.extend(zip(chunk, [p["class_id"] for p in answer["predictions"]]))
        return answers

    calls_before = served.batcher.calls
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = [pair for answers in pool.map(client, range(16)) for pair in answers]
    assert len(results) == 16 * 16 and all(expected[i] == c for i, c in results)
    lines = _log(tmp_path)
    assert len(lines) == 64 + 16 * 16 and served.answered == len(lines)
    assert {line["key"] for line in lines[64:]} == {"alice", "bob"}
    assert served.batcher.calls - calls_before < 16 * 4  # requests shared model calls


def test_the_binary_serves_until_interrupted(model, tmp_path):
    """The binary's work, forked warm as a plan step is (its console script is checked in tests/bin/test_flags.py)."""
    import os

    from tests import binaries

    path, _, _, images = model
    log, ready = tmp_path / "queries.jsonl", tmp_path / "ready"
    process = binaries.Forked("copycat_bin.serve", [f"--model={path}", "--port=0", f"--query_log={log}", "--top1",
                                                    f"--ready_file={ready}"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 120
        while not ready.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "".join(process.output())[-2000:]
        url = ready.read_text().strip()
        status, answer, _ = _post(url, images[:5], key="")  # no --api_keys: anyone may ask, logged as anonymous
        assert status == 200 and all(set(p) == {"class_id"} for p in answer["predictions"])
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(30)
    assert process.returncode == 0, err[-2000:]
    assert out.startswith(f"serving {path} at {url} "), out
    assert [json.loads(x)["key"] for x in log.read_text().splitlines()] == ["anonymous"] * 5


def test_a_plan_starts_the_server_in_the_background_and_stops_it(model, tmp_path, caplog, monkeypatch):
    from copycat_tf.plan import StageCall, start_in_background

    path, _, _, images = model
    ready = tmp_path / "serve" / "ready"
    call = StageCall("serve", (f"--model={path}", "--port=0", f"--query_log={tmp_path / 'serve' / 'q.jsonl'}",
                               f"--ready_file={ready}"), str(ready), background=True)
    # Started as a shell's background job is: SIGINT ignored, which the server inherits.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop = start_in_background(call)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        url = ready.read_text().strip()
        status, answer, _ = _post(url, images[:3], key="")
        assert status == 200 and len(answer["predictions"]) == 3
    finally:
        with caplog.at_level("WARNING", logger="copycat.plan"):
            stop()
    assert "did not stop" not in caplog.text  # the server stopped on SIGINT, not by the kill 30 s later
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url.split(":predict")[0], timeout=5)
    bad = StageCall("serve", ("--model=/no/such/export", f"--ready_file={tmp_path / 'r2'}"), str(tmp_path / "r2"),
                    background=True)
    for fork in ("1", "0"):  # forked from the warm server (as above), and as a fresh process where it cannot be
        monkeypatch.setenv("COPYCAT_FORK_STEPS", fork)
        with pytest.raises(CopycatError, match="(?s)background step serve failed.*not a SavedModel"):
            start_in_background(bad)


def test_a_rate_limited_steal_waits_and_never_spends_more_than_its_budget(model, server, tmp_path, monkeypatch):
    from beam_pipelines.steal_labels import StealLabelsConfig, run
    from tfrecords_schema import IMAGE, Manifest, write_manifest, write_shards

    pool = str(tmp_path / "pool")
    write_shards(pool, IMAGE, [image_record(i, 16, 16) for i in range(200)], num_shards=2)
    write_manifest(pool, Manifest(stage="build_npdd", record_kind="image", counts={"kept": 200}))
    url, served = server(rate=40.0)
    monkeypatch.setenv("COPYCAT_ORACLE_API_KEY", "alice-secret")
    manifest = run(StealLabelsConfig(images=pool, oracle=OracleSpec(url, num_classes=NUM_CLASSES, max_retries=20),
                                     output=str(tmp_path / "sl"), max_queries=70, batch_size=30))
    answered = [line for line in _log(tmp_path) if line["key"] == "alice"]
    assert len(answered) == served.answered == 70 == manifest.counts["queries"]  # 429s were retried, never re-paid
    assert len({line["image_sha256"] for line in answered}) == 70 and manifest.extra["queries_total"] == 70
    assert served.refused > 0  # the rate limit did refuse requests, and their resends cost nothing
