"""A real PeekAPI-compatible ingest on 127.0.0.1 for tests: records what arrives and can
be scripted (status codes, Retry-After, delays, hanging), stopped and restarted on the
same port. Usable in-process (``Ingest``) or as a subprocess (``python tests/ingest.py``).
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    delay: float = 0.0
    hang: bool = False  # accept, read, never answer (until the ingest stops)
    record: bool | None = None  # default: record only 2xx


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    events: list[dict[str, Any]]
    status: int
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ingest: Ingest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this, Nagle holds the body until the
    # client's delayed ACK, 40 ms per request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        ingest = self.server.ingest
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = raw
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(raw)
        reply = ingest._next_reply()
        if reply.hang:
            with ingest._cond:
                ingest.hung += 1
            ingest._stopped.wait(120)
            self.close_connection = True
            return
        if reply.delay:
            time.sleep(reply.delay)
        record = reply.record if reply.record is not None else 200 <= reply.status < 300
        try:
            events = json.loads(body)
        except ValueError:
            events = []
        request = Request(
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            events if isinstance(events, list) else [],
            reply.status,
            time.monotonic(),
        )
        ingest._record(request, accepted=record)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class Ingest:
    """Threaded loopback ingest. ``script`` replies are used first, then ``default``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.default = Reply()
        self.script: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.accepted: list[dict[str, Any]] = []
        self.hung = 0  # requests read and never answered (``Reply(hang=True)``)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.responder: Callable[[], Reply] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/events"

    def start(self) -> Ingest:
        self._stopped.clear()
        deadline = time.monotonic() + 10
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        server.ingest = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def _next_reply(self) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder()
        return self.default

    def _record(self, request: Request, accepted: bool) -> None:
        with self._cond:
            self.requests.append(request)
            if accepted:
                self.accepted.extend(request.events)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events were accepted; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.accepted) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.2))
            return list(self.accepted)

    def keys(self) -> Counter[tuple[str, str]]:
        """How many times each (trace_id, span_id) was accepted."""
        with self._lock:
            events = list(self.accepted)
        return Counter(
            (e["metadata"]["trace_id"], e["metadata"]["span_id"])
            for e in events
            if e.get("metadata")
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":  # pragma: no cover - used by subprocess tests
    ingest = Ingest(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(ingest.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ingest.stop()
