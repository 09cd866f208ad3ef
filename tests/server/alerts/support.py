"""Shared parts of the alert tests: events written through the real store, a clock the
test moves, and loopback HTTP receivers that record what a channel sent."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from peekapi_otel.server._store import EventStore

# 2026-12-03T08:00:00Z: every test's clock starts here, so windows are easy to read.
T0 = 1796284800.0


def iso_at(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat()


def event(
    at: float,
    *,
    status: int = 200,
    ms: float = 10.0,
    method: str = "GET",
    path: str = "/items",
    consumer: str | None = "c1",
) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "status_code": status,
        "response_time_ms": ms,
        "request_size": 0,
        "response_size": 10,
        "consumer_id": consumer,
        "metadata": None,
        "timestamp": iso_at(at),
    }


def store_events(db: Path, events: list[dict[str, Any]]) -> None:
    store = EventStore(db)
    try:
        store.insert_many(events)
    finally:
        store.close()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """A loopback HTTP server answering POSTs with the next scripted status (200 when
    the script is used up) and recording each request."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    retry_after: str | None = None
    reply: bytes = b'{"ok":true}'
    error_reply: bytes = b'{"ok":false}'
    hang: threading.Event | None = None  # when given: hold each request until it is set
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, request: Received) -> int:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def bodies(self) -> list[Any]:
        with self._cond:
            return [r.body for r in self.requests]


@contextmanager
def receiver(**kwargs: Any) -> Iterator[Receiver]:
    state = Receiver(**kwargs)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            status = state.record(Received(self.path, dict(self.headers), body))
            if state.hang is not None:
                state.hang.wait(60)
            reply = state.reply if status < 400 else state.error_reply
            self.send_response(status)
            if status == 429 and state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
