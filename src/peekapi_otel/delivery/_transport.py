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
import socket
import ssl
import time
from typing import Final, Protocol
from urllib.parse import urlsplit

from opentelemetry.instrumentation.utils import suppress_instrumentation

from peekapi_otel._version import __version__

USER_AGENT: Final = f"python-otel/{__version__}"
_EXCERPT: Final = 300
# Replies are only read for their status, a few headers and an excerpt: a larger body
# (or a hostile server) must not grow memory, so parsing stops at these bounds.
_MAX_BODY: Final = 64 * 1024
_MAX_LINE: Final = 64 * 1024
_MAX_HEADERS: Final = 100
_MAX_INTERIM: Final = 10
_RECV: Final = 32 * 1024
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_HEX: Final = b"0123456789abcdefABCDEF"


class RemoteDisconnected(ConnectionError):
    """EOF before a status line: the server closed a keep-alive connection."""


class MalformedResponse(Exception):
    """A reply that is not HTTP/1.x as we can parse it; the connection is dropped."""


# Errors that mean a pooled keep-alive connection was closed by the server while idle.
# SSLEOFError is TLS's EPIPE: the peer's TCP close seen while writing the request.
_STALE: Final = (
    RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
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
    """POSTs JSON bodies over one reused connection; reopens it after any failure.

    A minimal HTTP/1.1 client rather than ``http.client``: building the request and
    parsing reply headers with the email package cost over half a millisecond of CPU per
    POST, several times the rest of the send.
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
        self._file: _Reader | None = None
        self._ssl: ssl.SSLContext | None = None
        # A bad key or path must come back from send() as an error result, as it did
        # when http.client refused it there, not raise from the constructor.
        self._invalid: str | None = None
        self._answered = False
        self._head = b""
        try:
            self._head = self._build_head(api_key, default_port)
        except ValueError as exc:
            self._invalid = f"{type(exc).__name__}: {exc}"

    def _build_head(self, api_key: str, default_port: int) -> bytes:
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

    def _connect(self, timeout: float) -> tuple[socket.socket, _Reader]:
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
        reader = _Reader(sock)
        self._sock, self._file = sock, reader
        return sock, reader

    def close(self) -> None:
        sock, self._sock, self._file = self._sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def forget(self) -> None:
        """Drop the connection without touching the socket (a forked child's copy)."""
        self._sock = None
        self._file = None

    def send(self, body: bytes, timeout: float) -> SendResult:
        if self._invalid is not None:
            return SendResult(error=self._invalid)
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
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
        status, version, headers = _read_head(reader)
        # The server has taken the request: a reset from here on must not resend it.
        self._answered = True
        keep = _keeps_alive(version, headers)
        body, complete = _read_body(reader, status, headers)
        if not (keep and complete):
            self.close()
        return SendResult(
            status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
            excerpt=body[:_EXCERPT].decode("utf-8", "replace"),
            location=headers.get("location"),
        )


class _Reader:
    """Buffered reads from a socket: ``recv`` once per arrival, lines cut from the buffer."""

    __slots__ = ("_buf", "_sock", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self.deadline = float("inf")

    def _fill(self) -> bool:
        # The socket timeout bounds one recv; the deadline bounds the whole reply, so
        # an ingest that trickles bytes cannot hold the sender past its timeout.
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock = self._sock
        sock.settimeout(remaining)
        if _QUICKACK is not None:
            # An ingest that writes headers and body separately with Nagle on would
            # otherwise wait for our delayed ACK: 40 ms and several times the CPU a reply.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        data = sock.recv(_RECV)
        if not data:
            return False
        self._buf += data
        return True

    def readline(self) -> bytes | None:
        """One line without its CRLF (or bare LF); ``None`` at EOF before any byte."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                line = self._buf[:end]
                self._buf = self._buf[end + 1 :]
                if len(line) > _MAX_LINE:
                    raise MalformedResponse("header line too long")
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > _MAX_LINE:
                raise MalformedResponse("header line too long")
            start = len(self._buf)
            if not self._fill():
                if self._buf:
                    raise MalformedResponse("connection closed mid-line")
                return None

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer only at EOF."""
        while len(self._buf) < size:
            if not self._fill():
                break
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes, at least one unless at EOF."""
        if not self._buf and not self._fill():
            return b""
        data, self._buf = self._buf[:limit], self._buf[limit:]
        return data


def _read_head(reader: _Reader) -> tuple[int, int, dict[str, str]]:
    """Status, minor version and lower-cased headers of the final (non-1xx) reply."""
    for _ in range(_MAX_INTERIM):
        line = reader.readline()
        if line is None:
            raise RemoteDisconnected("remote end closed connection without response")
        status, version = _parse_status(line)
        headers = _read_headers(reader)
        if status == 101 or not 100 <= status < 200:
            return status, version, headers
    raise MalformedResponse("too many interim 1xx responses")


def _parse_status(line: bytes) -> tuple[int, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise MalformedResponse(f"bad status line {line[:80]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or code[0] == 0x30:
        raise MalformedResponse(f"bad status line {line[:80]!r}")
    return int(code), parts[0][-1] - 0x30


def _read_headers(reader: _Reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for _ in range(_MAX_HEADERS + 1):
        raw = reader.readline()
        if raw is None:
            raise MalformedResponse("connection closed in the headers")
        if not raw:
            return headers
        line = raw.decode("latin-1")
        if line[0] in " \t":
            # Obsolete line folding: a continuation of the previous header's value.
            if not last:
                raise MalformedResponse("continuation line before any header")
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, sep, value = line.partition(":")
        name = name.lower()
        if not sep or not name or name != name.strip():
            raise MalformedResponse(f"bad header line {line[:80]!r}")
        value = value.strip()
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise MalformedResponse("conflicting Content-Length headers")
            if name != "content-length":
                value = f"{headers[name]}, {value}"
        headers[name] = value
        last = name
    raise MalformedResponse("too many headers")


def _keeps_alive(version: int, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    if version >= 1:
        return True
    return "keep-alive" in tokens or "keep-alive" in headers


def _read_body(reader: _Reader, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
    """Up to 64 KiB of body, and whether the connection is left at a message boundary."""
    if status < 200 or status in (204, 304):
        return b"", status != 101
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.rsplit(",", 1)[-1].strip().lower() != "chunked":
            return _read_to_close(reader), False
        return _read_chunked(reader)
    length = headers.get("content-length")
    if length is None:
        return _read_to_close(reader), False
    if not length.isdigit():
        raise MalformedResponse(f"bad Content-Length {length[:40]!r}")
    size = int(length)
    data = reader.read(min(size, _MAX_BODY))
    if len(data) < min(size, _MAX_BODY):
        raise MalformedResponse("connection closed mid-body")
    # Skipping the rest of a large body could take as long as the server likes: a
    # fresh connection costs less than the time and memory to drain it.
    return data, size <= _MAX_BODY


def _read_to_close(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    kept = 0
    while kept < _MAX_BODY:
        data = reader.read_some(_MAX_BODY - kept)
        if not data:
            break
        parts.append(data)
        kept += len(data)
    return b"".join(parts)


def _read_chunked(reader: _Reader) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    kept = 0
    while True:
        line = reader.readline()
        if line is None:
            raise MalformedResponse("connection closed in a chunk size")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise MalformedResponse(f"bad chunk size {line[:40]!r}") from None
        if size_text.strip(_HEX):  # int() also takes "0x", "_", signs and spaces
            raise MalformedResponse(f"bad chunk size {line[:40]!r}")
        if size == 0:
            break
        if kept + size > _MAX_BODY:
            # Over the limit: keep what fits and drop the connection unread.
            parts.append(reader.read(_MAX_BODY - kept))
            return b"".join(parts), False
        data = reader.read(size)
        if len(data) < size or reader.readline() != b"":
            raise MalformedResponse("bad chunk framing")
        parts.append(data)
        kept += size
    _read_headers(reader)  # trailers: parsed for framing, their values unused
    return b"".join(parts), True
