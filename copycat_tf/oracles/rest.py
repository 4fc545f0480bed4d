"""A REST endpoint speaking TensorFlow Serving's predict protocol as the oracle.

Request: ``POST URL`` (e.g. https://host:8501/v1/models/NAME:predict) with
``{"instances": [{"b64": "<base64 image bytes>"}, ...]}``. Answer: ``{"predictions": [...]}`` where
each prediction is a class id, a score vector, or a dict of named outputs (``output`` picks one).

Behaviour of a careful client of a paid API: a timeout per request; bounded retries with
exponential backoff and jitter on 429, 5xx, timeouts and connection errors (other 4xx fail at once:
retrying cannot fix them); at most ``concurrency`` requests in flight from this process; at most
``queries_per_second`` images sent per second; TLS certificates verified unless the user turns it
off. The API key is read from an environment variable, sent as a header and never logged or stored:
the fingerprint is the URL without credentials or query string.
"""

import base64
import json
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

import numpy as np

from copycat_tf.oracles.base import Oracle, OracleError, top1

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
DEFAULT_KEY_ENV = "COPYCAT_ORACLE_API_KEY"


class _RateLimiter:
    """A token bucket: at most ``rate`` units per second, bursts up to one second's worth."""

    def __init__(self, rate: float | None, clock=time.monotonic, sleep=time.sleep):
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = rate or 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, units: int) -> None:
        if not self._rate:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(max(self._rate, units), self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= units - 1e-9:  # float rounding must not leave a sliver to wait for
                    self._tokens -= units
                    return
                wait = (units - self._tokens) / self._rate
            self._sleep(wait)


class RestOracle(Oracle):
    def __init__(
        self,
        url: str,
        output: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        concurrency: int = 4,
        queries_per_second: float | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        api_key_header: str = "Authorization",
        verify_tls: bool = True,
        num_classes: int | None = None,
    ):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OracleError(f"--oracle={url!r} is neither a SavedModel folder nor an http(s) URL")
        self._url = url
        self._output = output
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._backoff = backoff_s
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._limiter = _RateLimiter(queries_per_second)
        key = os.environ.get(api_key_env, "")
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers[api_key_header] = f"Bearer {key}" if api_key_header == "Authorization" else key
        self._context = ssl.create_default_context() if verify_tls else ssl._create_unverified_context()
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.fingerprint = f"rest:{parts.scheme}://{host}{parts.path}" + (f":{output}" if output else "")
        self.num_classes = num_classes
        self.retries = 0  # requests repeated after a failure (for reports and tests)
        self._settings = {"timeout_s": timeout_s, "max_retries": max_retries, "concurrency": concurrency,
                          "queries_per_second": queries_per_second, "verify_tls": verify_tls,
                          "api_key_from": api_key_env if key else None}

    def describe(self) -> dict:
        return {**super().describe(), "kind": "rest", **self._settings}

    def _post(self, body: bytes) -> dict:
        last_error = ""
        for attempt in range(self._max_retries + 1):
            if attempt:
                self.retries += 1
                time.sleep(self._backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
            request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
            try:
                with self._slots, urllib.request.urlopen(request, timeout=self._timeout, context=self._context) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code} {error.reason}"
                if error.code not in RETRYABLE_STATUS:
                    detail = error.read()[:300].decode(errors="replace")
                    raise OracleError(f"oracle at {self.fingerprint[5:]} refused the request: {last_error}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            except json.JSONDecodeError:
                raise OracleError(f"oracle at {self.fingerprint[5:]} answered with something that is not JSON") from None
        raise OracleError(
            f"oracle at {self.fingerprint[5:]} unreachable after {self._max_retries + 1} tries ({last_error}); "
            "check the URL and the network, or raise --oracle_retries / --oracle_timeout"
        )

    def classify(self, images: Sequence[bytes]) -> np.ndarray:
        if not len(images):
            return np.zeros([0], np.int64)
        self._limiter.acquire(len(images))
        body = json.dumps({"instances": [{"b64": base64.b64encode(data).decode()} for data in images]}).encode()
        predictions = self._post(body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(images):
            raise OracleError(f"oracle at {self.fingerprint[5:]} did not return one prediction per image")
        if isinstance(predictions[0], dict):
            name = self._output or next((n for n in ("class_id", "classes", "probabilities", "logits") if n in predictions[0]), None)
            if name is None or name not in predictions[0]:
                raise OracleError(f"the oracle returns several outputs ({', '.join(sorted(predictions[0]))}); pick one with --oracle_output")
            predictions = [p[name] for p in predictions]
        values = np.asarray(predictions)
        if values.ndim == 2 and values.shape[1] > 1 and self.num_classes is None:
            self.num_classes = int(values.shape[1])
        return top1(values)
