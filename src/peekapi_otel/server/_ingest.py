"""A local PeekAPI-compatible ingest: ``POST /v1/events`` into SQLite, plus the dashboard."""

from __future__ import annotations

import hmac
import json
import logging
import queue
import socket
import sqlite3
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from peekapi_otel.server._body import MalformedBody, decode
from peekapi_otel.server._dashboard import CSP, PAGE
from peekapi_otel.server._policy import HostPolicy
from peekapi_otel.server._query import BadQuery, Query, from_query_string
from peekapi_otel.server._refusals import RefusalLog
from peekapi_otel.server._store import EventStore, InvalidBatch, validate_batch
from peekapi_otel.server._stream import CLOSED, StreamHub, Subscriber
from peekapi_otel.server.db._backend import StoreUnavailable

if TYPE_CHECKING:
    from peekapi_otel.server.alerts import AlertEngine

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8787
DEFAULT_DB: Final = "peekapi-events.db"
DEFAULT_MAX_BODY: Final = 5 * 1024 * 1024
EVENTS_PATH: Final = "/v1/events"
API_KEY_ENV: Final = "PEEKAPI_SERVE_API_KEY"
"""Environment variable ``serve`` reads the required key from (after the CLI options)."""
_DRAIN_LIMIT: Final = 64 * 1024 * 1024
STREAM_KEEPALIVE: Final = 10.0
_STREAM_BATCH: Final = 200

_logger = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class IngestServer(ThreadingHTTPServer):
    """HTTP server holding the store and the ingest settings for its handlers."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: EventStore,
        *,
        api_key: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.store = store
        self.api_key = api_key
        self.max_body = max_body
        self.alerts: AlertEngine | None = None
        self.hosts = HostPolicy(address[0], allowed_hosts)
        self.refusals = RefusalLog(_logger)
        self.stream = StreamHub()
        store.listeners.append(self.stream.publish)

    def service_actions(self) -> None:
        # Called by serve_forever between requests: a refusal burst that then stops still
        # gets its summary line once its minute is over.
        self.refusals.flush()
        # Sketches held back by the last inserts reach the file even when no more come,
        # for readers in other processes (report).
        try:
            self.store.flush_sketches()
        except sqlite3.Error:
            _logger.debug("could not write the pending latency sketches yet", exc_info=True)


def _gunzip(body: bytes, limit: int) -> bytes:
    # Bounded decompression: a small gzip bomb must not expand past the body limit.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"invalid gzip body: {exc}") from None
    if len(out) > limit:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"decompressed body over {limit} bytes")
    if not inflater.eof:
        raise _Refused(HTTPStatus.BAD_REQUEST, "truncated gzip body")
    return out


class _Handler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"
    server_version = "peekapi-otel-ingest"
    # Headers and body are two writes: with Nagle on, the body would wait for the
    # client's delayed ACK (40 ms a reply).
    disable_nagle_algorithm = True
    # Idle keep-alive connections and stalled uploads must not hold a thread forever.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stderr is noise under load; keep it at debug level.
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, *, page: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if page:
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, "application/json")

    def do_GET(self) -> None:
        path, _, query_string = self.path.partition("?")
        if path == "/healthz":
            self._json(
                HTTPStatus.OK,
                {
                    "status": "ok",
                    "refused": self.server.refusals.snapshot(),
                    "stream": self.server.stream.stats(),
                },
            )
            return
        if not self.server.hosts.host_allowed(self.headers.get("Host")):
            # DNS rebinding: a page on another site reaching us under its own name.
            self._json(
                HTTPStatus.FORBIDDEN,
                {
                    "error": "Host not allowed: the dashboard answers to localhost, IP "
                    "addresses and the names given with --allow-host"
                },
            )
        elif path == "/":
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8", page=True)
        elif path in ("/api/summary", "/api/endpoint", "/api/consumer", "/api/stream"):
            try:
                query = from_query_string(query_string)
            except BadQuery as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            try:
                self._view(path, query)
            except StoreUnavailable as exc:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            except NotImplementedError as exc:
                self._json(HTTPStatus.NOT_IMPLEMENTED, {"error": str(exc)})
        elif path == "/api/alerts":
            alerts = self.server.alerts
            self._json(HTTPStatus.OK, {"enabled": False} if alerts is None else alerts.snapshot())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    do_HEAD = do_GET

    def _view(self, path: str, query: Query) -> None:
        store = self.server.store
        if path == "/api/summary":
            summary = store.summary(query)
            summary["ingest"] = {
                "events_path": EVENTS_PATH,
                "api_key_required": self.server.api_key is not None,
            }
            self._json(HTTPStatus.OK, summary)
        elif path == "/api/endpoint":
            if query.filters.method is None or query.filters.path is None:
                self._json(
                    HTTPStatus.BAD_REQUEST, {"error": "the endpoint view needs method and path"}
                )
                return
            self._json(HTTPStatus.OK, store.endpoint_view(query))
        elif path == "/api/consumer":
            if query.filters.consumer is None:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "the consumer view needs consumer"})
                return
            self._json(HTTPStatus.OK, store.consumer_view(query))
        else:
            self._stream(query)

    def _stream(self, query: Query) -> None:
        sub = self.server.stream.subscribe(query.filters)
        if sub is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many open streams"})
            return
        try:
            self.close_connection = True
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            # The browser reconnects 1 s after the stream ends (a restart, a drop).
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            self._pump(sub)
        except OSError:
            pass  # the browser went away
        finally:
            self.server.stream.unsubscribe(sub)

    def _pump(self, sub: Subscriber) -> None:
        while True:
            try:
                row = sub.queue.get(timeout=STREAM_KEEPALIVE)
            except queue.Empty:
                if sub.dropped:
                    return
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                continue
            chunks = []
            while row is not CLOSED:
                chunks.append(row)
                if len(chunks) >= _STREAM_BATCH:
                    break
                try:
                    row = sub.queue.get_nowait()
                except queue.Empty:
                    break
            if chunks:
                self.wfile.write(b"".join(chunks))
                self.wfile.flush()
            if row is CLOSED or (sub.dropped and sub.queue.empty()):
                return

    def _client(self) -> str:
        agent = self.headers.get("x-peekapi-sdk") or self.headers.get("User-Agent")
        return f"{agent or 'no x-peekapi-sdk or User-Agent'} at {self.client_address[0]}"

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        self.server.refusals.refused(int(status), reason, self._client())
        self._json(status, {"error": reason})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != EVENTS_PATH:
            self.close_connection = True
            self._refuse(HTTPStatus.NOT_FOUND, f"not found: events go to POST {EVENTS_PATH}")
            return
        try:
            rows = validate_batch(self._read_batch())
        except _Refused as exc:
            self._refuse(exc.status, exc.reason)
            return
        except InvalidBatch as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, str(exc))
            return
        try:
            accepted, duplicates = self.server.store.insert_rows(rows)
        except (sqlite3.Error, StoreUnavailable) as exc:
            # The store closing under a late request at shutdown, or PostgreSQL out of
            # reach: the sender should retry, not drop.
            self.close_connection = True
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"store unavailable: {exc}"})
            return
        except (ValueError, OverflowError, TypeError) as exc:
            # A value the checks above let through but SQLite cannot bind: the batch
            # would fail the same way on every retry, so it is refused, not retried.
            self._refuse(HTTPStatus.BAD_REQUEST, f"event cannot be stored: {exc}")
            return
        self._json(HTTPStatus.OK, {"accepted": accepted, "duplicates": duplicates})

    def _discard(self, length: int) -> None:
        # Closing a socket with unread data makes the kernel send RST, and the client may
        # then lose our error response; reading the body first lets the reply arrive.
        self.close_connection = True
        if length > _DRAIN_LIMIT:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)
        self.close_connection = False

    def _read_batch(self) -> Any:
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            # Two lengths are how request smuggling starts: never pick one of them.
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, "more than one Content-Length header")
        length_header = lengths[0] if lengths else None
        if self.headers.get("Transfer-Encoding") or length_header is None:
            self.close_connection = True
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(length_header) if length_header.strip().isdigit() else -1
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
        key = self.server.api_key
        if key is not None:
            given = self.headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), key.encode()):
                self._discard(length)
                raise _Refused(HTTPStatus.UNAUTHORIZED, "missing or invalid x-api-key")
        else:
            refusal = self.server.hosts.cross_site_refusal(
                self.headers.get("Origin"),
                self.headers.get("Host"),
                self.headers.get("Content-Type"),
            )
            if refusal is not None:
                self._discard(length)
                status = HTTPStatus.FORBIDDEN
                if refusal.startswith("Content-Type"):
                    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
                raise _Refused(status, refusal)
        limit = self.server.max_body
        if length > limit:
            self._discard(length)
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body, limit)
        elif encoding not in ("", "identity"):
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported encoding {encoding}")
        try:
            return decode(body)
        except MalformedBody as exc:
            raise _Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
