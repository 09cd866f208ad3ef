"""One keep-alive HTTP/1.1 connection (plain socket + ssl) that POSTs a body and never raises."""

from __future__ import annotations

import dataclasses
import email.utils

# socket.create_connection() encodes the host name with this codec, which Python imports
# on first use. Imported lazily in the sender thread, it can be mid-import when the app
# forks (the child's import then waits forever on the module lock) or fail with
# "unknown encoding: idna" at interpreter exit. Import it up front.
import encodings.idna  # noqa: F401
import gzip
import os
import socket
import ssl
import time
from typing import Final, Protocol
from urllib.parse import urlsplit

from opentelemetry.instrumentation.utils import suppress_instrumentation

from peekapi_otel._version import __version__
from peekapi_otel.delivery._http_reply import (
    Reader,
    RemoteDisconnected,
    keeps_alive,
    read_body,
    read_head,
)

USER_AGENT: Final = f"python-otel/{__version__}"
_EXCERPT: Final = 300


# Errors that mean a pooled keep-alive connection was closed by the server while idle.
# SSLEOFError is TLS's EPIPE: the peer's TCP close seen while writing the request.
_STALE: Final = (
    RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
)


@dataclasses.dataclass(frozen=True, slots=True)
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

    @property
    def is_connection_error(self) -> bool:
        """No answer at all: refused, reset, timed out, TLS or DNS failure."""
        return self.status is None


class Transport(Protocol):
    """What the pipeline needs from a transport; it never asks which one it has.

    ``send`` never raises: every failure comes back as a :class:`SendResult` whose
    ``status`` is ``None`` (:attr:`SendResult.is_connection_error`). A transport that
    holds a connection notices a fork itself and leaves the parent's connection alone.
    """

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
    """POSTs JSON bodies over one reused connection; reopens it after any failure.

    A minimal HTTP/1.1 client rather than ``http.client``, for two reasons:

    * CPU: a keep-alive POST of a 100-event batch to the loopback ingest costs the client
      about 96 us of CPU here and about 175 us with ``http.client`` (which builds each
      request's headers and parses each reply's with the ``email`` package), both with
      TCP_NODELAY and TCP_QUICKACK; medians of 8 alternating rounds of 2,000 POSTs,
      ``benchmarks/experiments/transport_cost.py`` on a shared 2-core development machine.
    * Time: ``http.client``'s timeout bounds each socket operation, so an ingest that
      trickles its reply a byte at a time holds the sender for as long as it likes;
      here a deadline bounds the whole reply (and its size is bounded too).
    """

    def __init__(self, endpoint: str, api_key: str, *, compression: str = "none") -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        default_port = 443 if self._https else 80
        self._port = parts.port or default_port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._gzip = compression == "gzip"
        self._sock: socket.socket | None = None
        self._file: Reader | None = None
        self._pid = os.getpid()  # the process that owns the connection
        self._ssl: ssl.SSLContext | None = None
        # A bad key or path must come back from send() as an error result, as it did
        # when http.client refused it there, not raise from the constructor.
        self._invalid: str | None = None
        self._answered = False
        self._request_head = b""
        try:
            self._request_head = self._build_request_head(api_key, default_port)
        except ValueError as exc:
            self._invalid = f"{type(exc).__name__}: {exc}"

    def _build_request_head(self, api_key: str, default_port: int) -> bytes:
        host = self._host
        if ":" in host:
            # An IPv6 literal; its zone ("%eth0") is local to this host, not the server's.
            host = f"[{host.partition('%')[0]}]"
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            host = host.encode("idna").decode("ascii")
        if self._port != default_port:
            host = f"{host}:{self._port}"
        headers = [
            ("Host", host),
            ("Accept-Encoding", "identity"),
            ("Content-Type", "application/json"),
            ("x-api-key", api_key),
            ("x-peekapi-sdk", USER_AGENT),
            ("User-Agent", f"peekapi-otel/{__version__}"),
            ("Connection", "keep-alive"),
        ]
        if self._gzip:
            headers.append(("Content-Encoding", "gzip"))
        if any(c <= " " or c == "\x7f" for c in self._path):
            raise ValueError(f"URL can't contain control characters: {self._path!r}")
        lines = [f"POST {self._path} HTTP/1.1"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError(f"Invalid header value for {name}")
            lines.append(f"{name}: {value}")
        # Latin-1 as http.client encodes header values; anything else raises ValueError.
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    def _connect(self, timeout: float) -> tuple[socket.socket, Reader]:
        sock = socket.create_connection((self._host, self._port), timeout)
        try:
            # A body larger than one TCP segment ends in a small one that Nagle would
            # hold until the ingest's delayed ACK (40 ms per batch): send it at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                sock = self._ssl.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        reader = Reader(sock)
        self._sock, self._file = sock, reader
        return sock, reader

    def close(self) -> None:
        self._leave_parent_connection()
        sock, self._sock, self._file = self._sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _leave_parent_connection(self) -> None:
        """In a forked child the connection is the parent's: drop our copy of it
        without writing to it or shutting it down."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._sock = None
            self._file = None

    def send(self, body: bytes, timeout: float) -> SendResult:
        self._leave_parent_connection()
        if self._invalid is not None:
            return SendResult(error=self._invalid)
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
        request = b"%s%d\r\n\r\n%s" % (self._request_head, len(body), body)
        with suppress_instrumentation():
            for attempt in (1, 2):
                reused = self._sock is not None
                try:
                    return self._post(request, timeout)
                except _STALE as exc:
                    self.close()
                    # A keep-alive connection the ingest closed while idle: retry once
                    # at once on a fresh one; any other failure goes to the caller.
                    if reused and attempt == 1 and not self._answered:
                        continue
                    return SendResult(error=f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # noqa: BLE001 - send() never raises
                    self.close()
                    if isinstance(exc, (socket.timeout, TimeoutError)):
                        return SendResult(error=f"timed out after {timeout:g}s")
                    return SendResult(error=f"{type(exc).__name__}: {exc}")
        return SendResult(error="unreachable")  # pragma: no cover

    def _post(self, request: bytes, timeout: float) -> SendResult:
        self._answered = False
        if self._sock is None or self._file is None:
            sock, reader = self._connect(timeout)
        else:
            sock, reader = self._sock, self._file
            sock.settimeout(timeout)
        reader.deadline = time.monotonic() + timeout
        sock.sendall(request)
        status, version, headers = read_head(reader)
        # The server has taken the request: a reset from here on must not resend it.
        self._answered = True
        keep = keeps_alive(version, headers)
        body, complete = read_body(reader, status, headers)
        if not (keep and complete):
            self.close()
        return SendResult(
            status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
            excerpt=body[:_EXCERPT].decode("utf-8", "replace"),
            location=headers.get("location"),
        )
