"""The HTTP side of copycat-serve: TF Serving's REST predict protocol on aiohttp, with request batching.

``POST /v1/models/NAME:predict`` with ``{"instances": [{"b64": "..."}, ...]}`` (or
``{"inputs": [...]}``) answers ``{"predictions": [{"class_id": c, "probabilities": [...]}, ...]}``
(``class_id`` alone under ``--top1``). ``GET /v1/models/NAME`` answers TF Serving's status plus the
served fingerprint. Every answer also carries the fingerprint in ``X-Copycat-Fingerprint``.

Requests that arrive together are answered by one model call (up to ``max_batch`` images, waiting at
most ``max_wait_ms`` for company); the model runs in a worker thread, so the event loop keeps
accepting clients meanwhile. Each answered image is one line of the query log, written before the
answer leaves, so every answer a client holds is accounted for per key.
"""

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import time

import numpy as np
from aiohttp import web

from copycat_tf.errors import CopycatError
from copycat_tf.serving.defenses import KeyLimits, answer_chain, defend, fingerprint, Watermark
from copycat_tf.serving.detection import ExtractionMonitor

log = logging.getLogger("copycat.serve")
FINGERPRINT_HEADER = "X-Copycat-Fingerprint"


def read_api_keys(path: str) -> dict[str, str]:
    """'name:secret' per line (blank lines and # comments skipped) → {secret: name}."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as error:
        raise CopycatError(f"--api_keys={path}: cannot read it ({error.strerror}); give a file of 'name:secret' "
                           "lines") from None
    keys = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        if not sep or not name.strip() or not secret.strip():
            raise CopycatError(f"--api_keys={path}, line {number}: write 'name:secret'")
        if secret.strip() in keys:
            raise CopycatError(f"--api_keys={path}, line {number}: that secret is already given to "
                               f"{keys[secret.strip()]!r}")
        keys[secret.strip()] = name.strip()
    if not keys:
        raise CopycatError(f"--api_keys={path} holds no key; write one 'name:secret' per line")
    return keys


@dataclasses.dataclass
class _Pending:
    images: list[bytes]
    future: asyncio.Future


class Batcher:
    """Collects the images of concurrent requests into model calls of at most ``max_batch`` images."""

    def __init__(self, predict, max_batch: int, max_wait_s: float):
        self._predict = predict  # list[bytes] -> float32 [N, K] probabilities (blocking; runs in a thread)
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.calls = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def predict(self, images: list[bytes]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(images, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].images)
            deadline = loop.time() + self._max_wait_s
            while size < self._max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                size += len(item.images)
            images = [image for item in batch for image in item.images]
            try:
                probabilities = await loop.run_in_executor(None, self._predict_in_chunks, images)
            except Exception as error:  # the model refused this batch (e.g. an undecodable image)
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(error)
                    continue
                for item in batch:  # one request's bad image must not fail the others': answer each alone
                    try:
                        alone = await loop.run_in_executor(None, self._predict_in_chunks, item.images)
                    except Exception as its_error:
                        if not item.future.done():
                            item.future.set_exception(its_error)
                    else:
                        if not item.future.done():
                            item.future.set_result(alone)
                continue
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(probabilities[start:start + len(item.images)])
                start += len(item.images)

    def _predict_in_chunks(self, images: list[bytes]) -> np.ndarray:
        """The model's answers in calls of at most ``max_batch`` images (one request may hold more)."""
        answers = []
        for start in range(0, len(images), self._max_batch):
            answers.append(self._predict(images[start:start + self._max_batch]))
            self.calls += 1
        return np.concatenate(answers, axis=0)


class QueryLog:
    """The per-key record of every answered image: one JSON line each, appended and flushed per request."""

    def __init__(self, path: str):
        self.path = path
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")
        except OSError as error:
            raise CopycatError(f"--query_log={path}: cannot open it for appending ({error.strerror})") from None

    def write(self, key: str, images: list[bytes], answers, fingerprint_: str) -> None:
        now = round(time.time(), 3)
        lines = [json.dumps({"time": now, "key": key, "image_sha256": hashlib.sha256(image).hexdigest(),
                             "class_id": int(answers.class_ids[i]), "defenses": answers.notes[i],
                             "fingerprint": fingerprint_}) for i, image in enumerate(images)]
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class WatermarkEvidence:
    """The images the watermark answered wrongly, kept per key as FOLDER/KEY/SHA256.img: what
    copycat-verify-ownership asks a suspect model about."""

    def __init__(self, folder: str):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise CopycatError(f"--watermark_keep={folder}: cannot create it ({error.strerror})") from None

    def keep(self, key: str, images: list[bytes], notes: list[list[str]]) -> None:
        for image, note in zip(images, notes):
            if "watermark" in note:
                where = os.path.join(self.folder, _safe(key))
                os.makedirs(where, exist_ok=True)
                path = os.path.join(where, hashlib.sha256(image).hexdigest() + ".img")
                with open(path + ".tmp", "wb") as handle:  # whole or absent: a crash leaves no cut image
                    handle.write(image)
                os.replace(path + ".tmp", path)


def _safe(key: str) -> str:
    """A key name as a folder name (letters, digits, - _ . kept; anything else as _)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key).lstrip(".") or "_"


def _error(status: int, message: str, **headers) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _images_of(body) -> list[bytes] | str:
    """The encoded images of a predict request, or the reason it is not one."""
    if not isinstance(body, dict):
        return "the body must be a JSON object with \"instances\" (or \"inputs\")"
    instances = body.get("instances", body.get("inputs"))
    if not isinstance(instances, list) or not instances:
        return "\"instances\" must be a non-empty list of {\"b64\": ...} images"
    images = []
    for number, instance in enumerate(instances):
        if isinstance(instance, dict) and "b64" not in instance and len(instance) == 1:
            instance = next(iter(instance.values()))  # a named input: {"image_bytes": {"b64": ...}}
        encoded = instance.get("b64") if isinstance(instance, dict) else None
        if not isinstance(encoded, str):
            return f"instance {number} is not {{\"b64\": \"<base64 image bytes>\"}}"
        try:
            images.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            return f"instance {number} is not valid base64"
    return images


class ServedModel:
    """The model, its defenses, the keys and the log behind the HTTP routes (one per server)."""

    def __init__(self, predict, identity: str, config, keys: dict[str, str] | None, watermark_secret: bytes | None):
        self.config = config
        self.keys = keys
        self.limits = KeyLimits(config.quota, config.quota_window_s, config.rate)
        watermark = Watermark(watermark_secret, config.watermark_share) if watermark_secret else None
        self.chain = answer_chain(watermark, config.round_to, config.top1, config.misinformation)
        self.monitor = None
        if config.prada_delta is not None:
            self.monitor = ExtractionMonitor(config.prada_delta, config.prada_min_queries, config.prada_block)
        self.monitors = (self.monitor,) if self.monitor is not None else ()
        self.fingerprint = fingerprint(identity, self.limits, self.chain, self.monitors)
        self.evidence = WatermarkEvidence(config.watermark_keep) if watermark and config.watermark_keep else None
        self.batcher = Batcher(predict, config.max_batch, config.max_wait_ms / 1000.0)
        self.query_log = QueryLog(config.query_log)
        self.answered = 0
        self.refused = 0  # requests answered 429 (over a quota or rate)

    def _caller(self, request: web.Request) -> str | None:
        if self.keys is None:
            return "anonymous"
        header = request.headers.get("Authorization", "")
        secret = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-Api-Key", "")
        for known, name in self.keys.items():
            if secret and hmac.compare_digest(secret.encode(), known.encode()):
                return name
        return None

    async def predict(self, request: web.Request) -> web.Response:
        headers = {FINGERPRINT_HEADER: self.fingerprint}
        if request.match_info["name"] != self.config.model_name:
            return _error(404, f"no model {request.match_info['name']!r} here (this server serves "
                               f"{self.config.model_name!r})", **headers)
        key = self._caller(request)
        if key is None:
            return _error(401, "unknown or missing API key: send 'Authorization: Bearer <key>'", **headers)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not JSON", **headers)
        images = _images_of(body)
        if isinstance(images, str):
            return _error(400, images, **headers)
        if len(images) > self.config.max_images:
            return _error(413, f"{len(images)} images in one request; at most {self.config.max_images}", **headers)
        flagged_at = self.monitor.blocked(key) if self.monitor is not None else None
        if flagged_at is not None:
            return _error(403, f"key {key!r} was flagged as a model-extraction client after {flagged_at} queries; "
                               "its requests are refused", **headers)
        wait = self.limits.admit(key, len(images))
        if wait is not None:
            self.refused += 1
            if math.isinf(wait):  # no wait makes it fit: the client must send fewer images per request
                return _error(413, f"{len(images)} images in one request are more than key {key!r}'s whole "
                                   f"allowance ({self.limits.largest_request()} images); send smaller requests",
                              **headers)
            return _error(429, f"key {key!r} is over its allowance; retry in {wait:.1f} s",
                          **headers, **{"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            probabilities = await self.batcher.predict(images)
        except Exception as error:
            self.limits.give_back(key, len(images))  # no answer, no quota spent
            return _error(400, f"the model could not answer: {str(error).splitlines()[0][:300]}", **headers)
        answers = defend(self.chain, images, probabilities)
        if self.monitor is not None:  # decoding and testing off the event loop: other clients keep being served
            # grouped by the model's own class, as PRADA does, not by a label another defense changed
            flags = await asyncio.get_running_loop().run_in_executor(None, self.monitor.observe, key, images,
                                                                     answers.model_ids)
            for notes, flagged_at in zip(answers.notes, flags):
                if flagged_at is not None:
                    notes.append(f"prada:flagged@{flagged_at}")  # the detector's own count for the key
        if self.evidence is not None:
            self.evidence.keep(key, images, answers.notes)
        self.query_log.write(key, images, answers, self.fingerprint)
        self.answered += len(images)
        predictions = []
        for index in range(len(images)):
            prediction = {"class_id": int(answers.class_ids[index])}
            if answers.probabilities is not None:
                prediction["probabilities"] = [float(p) for p in answers.probabilities[index]]
            predictions.append(prediction)
        return web.json_response({"predictions": predictions}, headers=headers)

    async def status(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.config.model_name:
            return _error(404, f"no model {request.match_info['name']!r} here")
        return web.json_response({"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                            "status": {"error_code": "OK", "error_message": ""}}],
                                  "fingerprint": self.fingerprint,
                                  "defenses": [d.spec() for d in self.chain] + (
                                      [self.limits.spec()] if self.limits.active else []) + [
                                      m.spec() for m in self.monitors]},
                                 headers={FINGERPRINT_HEADER: self.fingerprint})


def make_app(served: ServedModel) -> web.Application:
    """The aiohttp application: the predict and status routes, the batcher started and stopped with it."""
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/models/{name}:predict", served.predict)
    app.router.add_get("/v1/models/{name}", served.status)

    async def start(_app):
        served.batcher.start()

    async def stop(_app):
        await served.batcher.stop()
        served.query_log.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


async def _serve_forever(served: ServedModel, host: str, port: int, ready) -> None:
    runner = web.AppRunner(make_app(served), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise CopycatError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port or --host") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}/v1/models/{served.config.model_name}:predict"
    if ready is not None:
        ready(url)
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()


def serve(config, ready=None) -> None:
    """Load the model and serve it until interrupted; ``ready(url)`` is called once it listens."""
    from copycat_tf.serving.model import load_predict

    config.validate()
    keys = read_api_keys(config.api_keys) if config.api_keys else None
    secret = None
    if config.watermark_key:
        try:
            secret = open(config.watermark_key, "rb").read().strip()
        except OSError as error:
            raise CopycatError(f"--watermark_key={config.watermark_key}: cannot read it ({error.strerror})") from None
        if not secret:
            raise CopycatError(f"--watermark_key={config.watermark_key} is empty; put a secret in it")
    predict, identity = load_predict(config.model)
    served = ServedModel(predict, identity, config, keys, secret)
    if config.ready_file:
        announce = ready

        def ready(url):
            try:
                with open(config.ready_file + ".tmp", "w") as handle:
                    handle.write(url + "\n")
                os.replace(config.ready_file + ".tmp", config.ready_file)
            except OSError as error:
                raise CopycatError(f"--ready_file={config.ready_file}: cannot write it ({error.strerror})") from None
            if announce is not None:
                announce(url)
    log.info("serving %s (fingerprint %s) with defenses %s", config.model, served.fingerprint,
             [d.name for d in served.chain] + (["limits"] if served.limits.active else []) +
             [m.name for m in served.monitors] or "none")
    _stop_on_signals()
    try:
        asyncio.run(_serve_forever(served, config.host, config.port, ready))
    except KeyboardInterrupt:
        pass


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM both stop the server cleanly, also when it was started with SIGINT ignored (a shell's
    background job inherits that): a plan or a service manager can always stop it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def start_in_thread(served: ServedModel, host: str = "127.0.0.1", port: int = 0):
    """Serve in a background thread (tests, benchmarks): returns (url, stop); stop() shuts it down cleanly."""
    import threading

    loop = asyncio.new_event_loop()
    started = threading.Event()
    found = {}

    def ready(url):
        found["url"] = url
        started.set()

    def main():
        asyncio.set_event_loop(loop)
        task = loop.create_task(_serve_forever(served, host, port, ready))
        found["task"] = task
        try:
            loop.run_until_complete(task)
        except (asyncio.CancelledError, CopycatError) as error:
            found.setdefault("error", error)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started.wait(60)
    if "url" not in found:
        raise found.get("error") or CopycatError("the server did not start within 60 s")

    def stop():
        loop.call_soon_threadsafe(found["task"].cancel)
        thread.join(30)

    return found["url"], stop
