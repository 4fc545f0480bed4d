"""A REST endpoint speaking TensorFlow Serving's predict protocol as the oracle.

Request: ``POST URL`` (e.g. https://host:8501/v1/models/NAME:predict) with
``{"instances": [{"b64": "<base64 image bytes>"}, ...]}``. Answer: a JSON object with
``"predictions"`` (row format) or ``"outputs"`` (columnar format), one prediction per image: a class
id, a score vector, or a dict of named outputs (``output`` picks one).

Behaviour of a careful client of a paid API:
  * a deadline per request: ``timeout_s`` is the most one request may take in all (connect, send,
    every byte of the answer), enforced by a watchdog that cuts the socket, so a server that drips
    a byte at a time cannot hold it longer;
  * bounded retries with exponential backoff and jitter on 408, 429, 5xx, timeouts and connection
    errors (other answers fail at once: retrying cannot fix them); a Retry-After in seconds is waited
    out (a request is never resent sooner), and one of more than 5 minutes stops the run instead. A 429 is
    a refusal (nothing was used), so its resend costs nothing; a retry of a request the server may have
    used (a timeout, a 408 or 5xx, a cut answer) is a new query: it is paid for in the ledger first
    (copycat_tf.ledger.pay_for_resend) and not made when the budget cannot pay for the whole batch;
  * no redirects: a 3xx is an error naming where it pointed, so credentials only ever go to the
    origin of ``--oracle``;
  * at most ``concurrency`` requests in flight from this process; at most ``queries_per_second``
    images sent per second; TLS certificates verified unless the user turns it off; the HTTP proxy
    of ``http_proxy``/``https_proxy`` (``no_proxy`` honoured; https through a CONNECT tunnel);
  * answers validated before anyone records them (copycat_tf.oracles.base.class_ids);
  * secrets never shown: the API key comes from an environment variable and is sent as a header;
    credentials in the URL (``user:password@`` → HTTP Basic, ``?api_key=...``-style parameters →
    sent as given) are scrubbed (``***``) from descriptions, manifests, logs and errors, and so is
    anything of them a server echoes back. The fingerprint is the URL without credentials or query.
"""

import base64
import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from typing import Sequence

import numpy as np

from copycat_tf import ledger as ledger_module
from copycat_tf.oracles.base import (Oracle, OracleError, batch_name, class_ids, scrub_text, scrub_url,
                                     url_secrets)

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 300.0  # a server asking for a longer wait (a spent quota) stops the run instead
DEFAULT_KEY_ENV = "COPYCAT_ORACLE_API_KEY"
MAX_REPLY_BYTES = 64 << 20  # an answer larger than this is refused (a class per image is a few bytes)
_ERROR_DETAIL_CHARS = 300
_PREFERRED_OUTPUTS = ("class_id", "classes", "probabilities", "logits")


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


class _Failure(Exception):
    """One request failed; ``delivered``: the server may have received the images (a retry pays again)."""

    def __init__(self, message: str, retryable: bool, delivered: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.retryable, self.delivered = message, retryable, delivered
        self.retry_after = retry_after  # seconds the server asked to wait (Retry-After), if it said


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds (an HTTP date or nonsense: None, the backoff decides)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


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
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        self._shown = scrub_url(url)
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise OracleError(f"--oracle={self._shown} is not a valid URL (check the host and port)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OracleError(f"--oracle={self._shown!r} is neither a SavedModel folder nor an http(s) URL")
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = port or (443 if parts.scheme == "https" else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._output = output
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._backoff = backoff_s
        self._max_reply = max_reply_bytes
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._limiter = _RateLimiter(queries_per_second)
        key = os.environ.get(api_key_env, "")
        self._secrets = url_secrets(url) + ([key] if key else [])
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", "Connection": "close"}
        if key:
            self._headers[api_key_header] = f"Bearer {key}" if api_key_header == "Authorization" else key
        if parts.username is not None or parts.password is not None:
            if "Authorization" in self._headers:
                raise OracleError(f"--oracle={self._shown} carries a user:password and ${api_key_env} holds an API key; "
                                  "give the credentials one way only")
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
            self._secrets.append(token)
        default_port = 443 if parts.scheme == "https" else 80
        bracketed = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = f"{bracketed}:{self._port}"
        self._headers["Host"] = bracketed + (f":{self._port}" if self._port != default_port else "")
        self._proxy = self._proxy_from_environment()
        self._context = None
        if parts.scheme == "https":
            self._context = ssl.create_default_context() if verify_tls else ssl._create_unverified_context()
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.fingerprint = f"rest:{parts.scheme}://{host}{parts.path}" + (f":{output}" if output else "")
        self.num_classes = num_classes
        self._classes_from = "--num_classes"
        self.retries = 0  # requests repeated after a failure (for reports and tests)
        self._batches = 0
        self._count_lock = threading.Lock()
        self._settings = {"url": self._shown, "timeout_s": timeout_s, "max_retries": max_retries,
                          "concurrency": concurrency, "queries_per_second": queries_per_second,
                          "verify_tls": verify_tls, "api_key_from": api_key_env if key else None}

    def describe(self) -> dict:
        return {**super().describe(), "kind": "rest", **self._settings}

    def _proxy_from_environment(self):
        """(host, port, headers) of the HTTP proxy that ``http_proxy``/``https_proxy`` name for this URL, or None."""
        proxy = urllib.request.getproxies().get(self._scheme)
        if not proxy or urllib.request.proxy_bypass(self._host):
            return None
        shown = scrub_url(proxy)
        try:
            parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            port = parts.port or 80
        except ValueError:
            raise OracleError(f"the {self._scheme}_proxy setting {shown} is not a valid URL") from None
        if parts.scheme != "http" or not parts.hostname:
            raise OracleError(f"the {self._scheme}_proxy setting {shown} is not an http:// proxy; copycat speaks to "
                              "HTTP proxies only (unset it, or add the oracle's host to no_proxy)")
        headers = {}
        if parts.username is not None:
            user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {token}"
            self._secrets += [token, *url_secrets(proxy)]
        return parts.hostname, port, headers

    def _tunnel(self, sock) -> None:
        """Ask the proxy for a tunnel to the oracle (CONNECT), for https through a proxy."""
        lines = [f"CONNECT {self._authority} HTTP/1.1", f"Host: {self._authority}",
                 *[f"{name}: {value}" for name, value in self._proxy[2].items()]]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("the proxy closed the connection")
            reply += chunk
            if len(reply) > 1 << 16:
                raise _Failure("the proxy answered CONNECT with more than 64 KiB of headers", False, False)
        status = reply.split(b"\r\n", 1)[0].decode("latin-1")
        words = status.split(" ", 2)
        if len(words) < 2 or not words[0].startswith("HTTP/") or words[1] != "200":
            raise _Failure(f"the proxy refused a tunnel to the oracle ({status[:60]!r}); check https_proxy / no_proxy",
                           False, False)

    # -- one request ------------------------------------------------------------------------------

    def _error(self, where: str, message: str) -> OracleError:
        return OracleError(scrub_text(f"{where}: {message}", self._secrets))

    @staticmethod
    def _cut(box: list, cut: threading.Event) -> None:
        """The deadline passed: end whatever the request is doing (reading, writing, handshaking)."""
        cut.set()
        try:
            box[0].shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _exchange(self, body: bytes) -> dict:
        """Send one request and read its whole answer within the deadline; raises _Failure."""
        deadline = time.monotonic() + self._timeout
        address = self._proxy[:2] if self._proxy else (self._host, self._port)
        try:
            sock = socket.create_connection(address, timeout=self._timeout)
        except OSError as error:
            via = f" through the proxy {address[0]}:{address[1]}" if self._proxy else ""
            raise _Failure(f"cannot connect{via} ({type(error).__name__}: {error})", retryable=True, delivered=False) from None
        box, cut = [sock], threading.Event()
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut, (box, cut))
        watchdog.daemon = True
        watchdog.start()
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        delivered = False
        target, headers = self._target, self._headers
        try:
            if self._proxy and self._context is None:  # plain http through a proxy: the absolute URL to it
                target = f"http://{self._authority}{self._target}"
                headers = {**self._headers, **self._proxy[2]}
            elif self._proxy:
                self._tunnel(sock)
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(sock, server_hostname=self._host, do_handshake_on_connect=False)
                    box[0] = sock
                    sock.do_handshake()
                except ssl.SSLCertVerificationError as error:
                    raise _Failure(f"its TLS certificate is not trusted ({error.verify_message}); fix the server's "
                                   "certificate (--nooracle_verify_tls only for a test server)", False, False) from None
            connection.sock = sock
            delivered = True  # from here on the server may have the images
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            data = self._read(response, deadline, cut)
            if cut.is_set():
                raise TimeoutError("cut at the deadline")
            return self._parse(response, data)
        except _Failure:
            raise
        except Exception as error:  # what the socket or http.client raised: decide what it means
            if cut.is_set() or time.monotonic() >= deadline:
                raise _Failure(f"no complete answer within --oracle_timeout={self._timeout:g}s", True, delivered) from None
            if isinstance(error, http.client.BadStatusLine) and not isinstance(error, ConnectionError):
                line = scrub_text(str(error.args[0] if error.args else "")[:60], self._secrets)
                raise _Failure(f"answered with something that is not HTTP (status line {line!r})", False, delivered) from None
            if isinstance(error, http.client.IncompleteRead):
                raise _Failure("closed the connection in the middle of its answer", True, delivered) from None
            if isinstance(error, http.client.HTTPException):
                raise _Failure(f"answered with malformed HTTP ({type(error).__name__})", False, delivered) from None
            if isinstance(error, (OSError, ssl.SSLError)):
                raise _Failure(f"{type(error).__name__}: {error}", True, delivered) from None
            raise
        finally:
            watchdog.cancel()
            connection.close()
            box[0].close()

    def _read(self, response, deadline: float, cut: threading.Event) -> bytes:
        chunks, size = [], 0
        while True:
            if time.monotonic() >= deadline or cut.is_set():
                raise TimeoutError("deadline")
            chunk = response.read1(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > self._max_reply:
                raise _Failure(f"answered with more than {self._max_reply} bytes", False, True)
            chunks.append(chunk)
        if response.length:  # Content-Length promised more than came
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        return b"".join(chunks)

    def _parse(self, response, data: bytes) -> dict:
        status, reason = response.status, scrub_text(str(response.reason or ""), self._secrets)
        if 300 <= status < 400:
            origin = self._origin_of(response.getheader("Location") or "")
            raise _Failure(f"answered HTTP {status} {reason}, a redirect to {origin}; copycat does not follow redirects "
                           "(credentials go only to the origin they were given for). Fix: pass the final URL as --oracle",
                           False, True)
        if status in RETRYABLE_STATUS:
            wait = _retry_after(response.getheader("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER_S:
                raise _Failure(f"HTTP {status} {reason}, asking to wait {wait:.0f} s before another request (a quota "
                               "or rate limit); stopped instead of waiting. Fix: rerun later (every answer so far is "
                               "kept)", False, True)
            # 429 is a refusal before any work (a rate limit or quota): resending it is not a new query. Other
            # retryable answers (408, 5xx) may come after the server used the images: a resend is paid again.
            raise _Failure(f"HTTP {status} {reason}", True, status != 429, retry_after=wait)
        if not 200 <= status < 300:
            detail = scrub_text(data[: 16 * _ERROR_DETAIL_CHARS].decode("utf-8", errors="replace"), self._secrets)
            detail = " ".join(detail.split())[:_ERROR_DETAIL_CHARS]
            raise _Failure(f"refused the request: HTTP {status} {reason}: {detail}", False, True)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Failure("answered with bytes that are not UTF-8 text, so not JSON", False, True) from None
        try:
            return json.loads(text)
        except ValueError:
            raise _Failure("answered with something that is not JSON", False, True) from None

    def _origin_of(self, location: str) -> str:
        """scheme://host[:port] of a redirect's target (never its path, query or userinfo)."""
        try:
            target = urllib.parse.urlsplit(urllib.parse.urljoin(f"{self._scheme}://{self._host}:{self._port}/", location))
            port = target.port
        except ValueError:
            return "a malformed location"
        if not target.hostname:
            return "nowhere"
        return f"{target.scheme}://{target.hostname}" + (f":{port}" if port else "")

    def _post(self, body: bytes, count: int, where: str):
        """The request with its retries; a retry of a request that may have arrived is paid for first."""
        paid = True  # the first send was reserved by the caller
        failure = None
        for attempt in range(self._max_retries + 1):
            if attempt:
                with self._count_lock:
                    self.retries += 1
                backoff = self._backoff * 2 ** (attempt - 1) * (0.5 + random.random())
                time.sleep(max(backoff, failure.retry_after or 0.0))  # the server's Retry-After, when it said one
                if not paid:
                    refused = ledger_module.pay_for_resend(count)
                    if refused:
                        raise self._error(where, f"{failure.message}; retrying would send these {count} images again, "
                                                 f"but {refused}: stopped, nothing of this batch was recorded. Fix: "
                                                 "rerun later (every answer so far is kept) or raise --max_queries")
                    self._limiter.acquire(count)
                    paid = True
            try:
                with self._slots:
                    return self._exchange(body)
            except _Failure as error:
                failure = error
                if error.delivered:
                    paid = False
                if not error.retryable:
                    raise self._error(where, error.message) from None
        raise self._error(where, f"unreachable after {self._max_retries + 1} tries ({failure.message}); check the URL "
                                 "and the network, or raise --oracle_retries / --oracle_timeout")

    # -- the answer ---------------------------------------------------------------------------------

    def _predictions(self, answer, where: str) -> list:
        def fail(problem):
            raise self._error(where, f"{problem}; nothing of this batch was recorded. Fix: point --oracle at a "
                                     "TensorFlow Serving :predict endpoint")

        if not isinstance(answer, dict):
            fail(f"answered JSON that is not an object with 'predictions' or 'outputs' (a {type(answer).__name__})")
        key = next((k for k in ("predictions", "outputs") if k in answer), None)
        if key is None:
            said = f" (it says: {' '.join(str(answer['error']).split())[:200]})" if "error" in answer else ""
            fail(f"answered a JSON object without 'predictions' or 'outputs'{said}")
        values = answer[key]
        if isinstance(values, dict):  # columnar format with named outputs
            values = self._pick(values, where)
        if not isinstance(values, list):
            fail(f"'{key}' is a {type(values).__name__}, not a list with one prediction per image")
        if values and any(isinstance(p, dict) for p in values):
            if not all(isinstance(p, dict) for p in values):
                fail("some predictions are named outputs and some are not")
            name = self._pick_name(values[0], where)
            if not all(name in p for p in values):
                fail(f"output {name!r} is missing from some predictions")
            values = [p[name] for p in values]
        return values

    def _pick_name(self, outputs: dict, where: str) -> str:
        name = self._output or next((n for n in _PREFERRED_OUTPUTS if n in outputs), None)
        if name is None or name not in outputs:
            names = ", ".join(sorted(map(str, outputs)))
            raise self._error(where, f"the oracle returns the outputs {names}; pick one with --oracle_output")
        return name

    def _pick(self, outputs: dict, where: str):
        return outputs[self._pick_name(outputs, where)]

    def classify(self, images: Sequence[bytes]) -> np.ndarray:
        if not len(images):
            return np.zeros([0], np.int64)
        with self._count_lock:
            self._batches += 1
            number = self._batches
        where = batch_name(f"oracle at {self._shown}", number, len(images))
        self._limiter.acquire(len(images))
        body = json.dumps({"instances": [{"b64": base64.b64encode(data).decode()} for data in images]}).encode()
        predictions = self._predictions(self._post(body, len(images), where), where)
        labels, width = class_ids(predictions, len(images), self.num_classes, where, self._classes_from)
        if width and self.num_classes is None:
            self.num_classes, self._classes_from = width, "the width of its earlier score rows"
        return labels
