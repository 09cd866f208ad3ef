"""One keep-alive ``http.client`` connection that POSTs a body and never raises."""

from __future__ import annotations

import dataclasses
import email.utils

# socket.create_connection() encodes the host name with this codec, which Python imports
# on first use. Imported lazily in the sender thread, it can be mid-import when the app
# forks (the child's import then waits forever on the module lock) or fail with
# "unknown encoding: idna" at interpreter exit. Import it up front.
import encodings.idna  # noqa: F401
import gzip
import http.client
import socket
import ssl
import time
from typing import Final, Protocol
from urllib.parse import urlsplit

from opentelemetry.instrumentation.utils import suppress_instrumentation

from peekapi_otel._version import __version__

USER_AGENT: Final = f"python-otel/{__version__}"
_EXCERPT: Final = 300
# Errors that mean a pooled keep-alive connection was closed by the server while idle.
_STALE: Final = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


@dataclasses.dataclass(frozen=True)
class SendResult:
    """Outcome of one POST: a status (any class), or an error before a status arrived."""

    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    excerpt: str = ""
    location: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Transport(Protocol):
    def send(self, body: bytes, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class HttpTransport:
    """POSTs JSON bodies over one reused connection; reopens it after any failure."""

    def __init__(self, endpoint: str, api_key: str, *, compression: str = "none") -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._gzip = compression == "gzip"
        self._headers = {
            "Content-Type": "application/json",
            "x-api-key": api_key,
            "x-peekapi-sdk": USER_AGENT,
            "User-Agent": f"peekapi-otel/{__version__}",
            "Connection": "keep-alive",
        }
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._conn: http.client.HTTPConnection | None = None
        self._ssl: ssl.SSLContext | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        # A body larger than one TCP segment ends in a small one that Nagle would hold
        # until the ingest's delayed ACK (40 ms per batch): send it at once.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def forget(self) -> None:
        """Drop the connection without touching the socket (a forked child's copy)."""
        self._conn = None

    def send(self, body: bytes, timeout: float) -> SendResult:
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
        with suppress_instrumentation():
            for attempt in (1, 2):
                reused = self._conn is not None
                try:
                    return self._post(body, timeout)
                except _STALE as exc:
                    self.close()
                    # A keep-alive connection the ingest closed while idle: retry once
                    # at once on a fresh one; any other failure goes to the caller.
                    if reused and attempt == 1:
                        continue
                    return SendResult(error=f"{type(exc).__name__}: {exc}")
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    self.close()
                    if isinstance(exc, (socket.timeout, TimeoutError)):
                        return SendResult(error=f"timed out after {timeout:g}s")
                    return SendResult(error=f"{type(exc).__name__}: {exc}")
        return SendResult(error="unreachable")  # pragma: no cover

    def _post(self, body: bytes, timeout: float) -> SendResult:
        conn = self._conn
        if conn is None:
            conn = self._connect(timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        conn.request("POST", self._path, body=body, headers=self._headers)
        response = conn.getresponse()
        data = response.read(64 * 1024 + 1)
        if len(data) > 64 * 1024 or response.will_close:
            self.close()
        return SendResult(
            status=response.status,
            retry_after=parse_retry_after(response.getheader("Retry-After")),
            excerpt=data[:_EXCERPT].decode("utf-8", "replace"),
            location=response.getheader("Location"),
        )
