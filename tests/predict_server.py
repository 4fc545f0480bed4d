"""A real TF-Serving-style :predict HTTP server on loopback, with failures the test injects."""

import base64
import contextlib
import io
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import numpy as np
import PIL.Image

from tests import binaries
from tfrecords_schema import content_id


class PredictServer:
    """Answers ``POST /v1/models/NAME:predict`` with ``label_of(pixels)`` for each instance.

    ``fail(n)`` is asked for the n-th request (1-based) and may return an HTTP status to answer
    with instead, "slow" to answer after ``slow_s`` seconds, or None. ``on_request(n)`` runs once the
    request's images are recorded, before it is answered.
    Everything received is recorded: ``requests``, ``ids`` (content ids of the images, per request),
    the most requests in flight at once, and the headers.
    """

    def __init__(self, label_of: Callable[[np.ndarray], int], fail=None, slow_s: float = 2.0,
                 answer_delay_s: float = 0.0, api_key: str | None = None, on_request=None, output: str | None = None):
        self.label_of = label_of
        self.fail = fail or (lambda n: None)
        self.slow_s = slow_s
        self.answer_delay_s = answer_delay_s
        self.api_key = api_key
        self.on_request = on_request
        self.output = output
        self.requests = 0
        self.answered_ids: list[list[str]] = []  # ids of each request that got an answer
        self.received_ids: list[list[str]] = []  # ids of every request, answered or not
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                with server._lock:
                    server.requests += 1
                    number = server.requests
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.headers.append(dict(self.headers))
                self.counted = True  # in flight until its answer starts to leave (see _reply)
                try:
                    server._handle(self, number)
                finally:
                    server._leave(self)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_port}/v1/models/target:predict"
        # Polled every 20 ms (http.server's default is 0.5 s): leaving the server waits for its loop to notice.
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _handle(self, handler, number: int) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        pixels = [np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(i["b64"]))).convert("RGB")) for i in body["instances"]]
        ids = [content_id(p) for p in pixels]
        with self._lock:
            self.received_ids.append(ids)
        if self.on_request:  # after the request is recorded as received, so a held request counts as in flight
            self.on_request(number)
        if self.api_key and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._reply(handler, 401, {"error": "bad key"})
        failure = self.fail(number)
        if failure == "slow":
            time.sleep(self.slow_s)
        elif failure:
            return self._reply(handler, failure, {"error": "injected"})
        time.sleep(self.answer_delay_s)
        labels = [int(self.label_of(p)) for p in pixels]
        predictions = [{self.output: label} for label in labels] if self.output else labels
        with self._lock:
            self.answered_ids.append(ids)
        self._reply(handler, 200, {"predictions": predictions})

    def _leave(self, handler) -> None:
        """A request stops counting as in flight once, before its answer is written: a client may send its next
        request as soon as it reads this one's answer, which can be before this thread runs again."""
        with self._lock:
            if getattr(handler, "counted", False):
                handler.counted = False
                self.in_flight -= 1

    def _reply(self, handler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self._leave(handler)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) or was killed
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._http.shutdown()
        self._http.server_close()


@contextlib.contextmanager
def killed_while_held(label_of: Callable[[np.ndarray], int], request: int, arguments: list[str]):
    """A running PredictServer after ``copycat-steal-labels ARGUMENTS --oracle=URL`` (a process of its own) was
    killed with SIGKILL while the server held its ``request``-th request unanswered."""
    holding, release = threading.Event(), threading.Event()

    def on_request(number):
        if number == request:  # keep this batch in flight until the client is dead
            holding.set()
            release.wait(120)

    with PredictServer(label_of, on_request=on_request) as server:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = binaries.Forked("copycat_bin.steal_labels", [f"--oracle={server.url}", *arguments], env=env)
        try:
            assert holding.wait(300), f"the labeling run never reached request {request}"
            process.send_signal(signal.SIGKILL)
            process.communicate(60)
        finally:
            release.set()
        assert process.returncode == -signal.SIGKILL
        yield server


def http_response(status: int = 200, body: bytes | str | object = b"", reason: str = "OK",
                  headers: dict | None = None) -> bytes:
    """A whole raw HTTP/1.1 answer (``body`` that is not bytes or str is sent as JSON)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close",
             *[f"{name}: {value}" for name, value in (headers or {}).items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawServer:
    """A hostile HTTP server on loopback: it answers each request with whatever bytes the test scripts.

    ``respond(number, request)`` (1-based request number; ``request`` has ``method``, ``target``,
    ``headers``, ``ids``) returns the raw bytes to send, or a list of ``(bytes, seconds to wait after)``
    pieces (a slow drip). Everything received is recorded: ``requests`` (one dict each) and
    ``received_ids`` (content ids of the images of each request).
    """

    def __init__(self, respond):
        import socket

        self.respond = respond
        self.requests: list[dict] = []
        self.received_ids: list[list[str]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)  # how often the accept loop looks whether the test has left the server
        self.port = self._listener.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.origin}/v1/models/target:predict"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def images_received(self) -> int:
        return sum(len(ids) for ids in self.received_ids)

    def _serve(self):
        import socket

        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection):
        with connection:
            connection.settimeout(5)
            reader = connection.makefile("rb")
            try:
                request_line = reader.readline().decode("latin-1").strip()
                headers = {}
                while (line := reader.readline().decode("latin-1").strip()):
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", 0) or 0))
            except OSError:
                return
            method, _, rest = request_line.partition(" ")
            ids = []
            if body:
                try:
                    instances = json.loads(body)["instances"]
                    ids = [content_id(np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(i["b64"]))).convert("RGB")))
                           for i in instances]
                except (ValueError, KeyError, TypeError):
                    ids = []
            request = {"method": method, "target": rest.rsplit(" ", 1)[0], "headers": headers, "ids": ids}
            with self._lock:
                self.requests.append(request)
                self.received_ids.append(ids)
                number = len(self.requests)
            pieces = self.respond(number, request)
            if isinstance(pieces, bytes):
                pieces = [(pieces, 0.0)]
            try:
                for data, wait in pieces:
                    if self._stop.is_set():
                        return
                    connection.sendall(data)
                    if wait:
                        time.sleep(wait)
            except OSError:  # the client hung up (e.g. at its deadline)
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._listener.close()
        self._thread.join(2)
