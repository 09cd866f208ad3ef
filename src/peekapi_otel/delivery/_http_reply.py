"""Reading an HTTP/1.x reply from a socket, bounded in time (a deadline for the whole
reply) and in memory (line, header and body limits)."""

from __future__ import annotations

import socket
import time
from typing import Final

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


class Reader:
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


def read_head(reader: Reader) -> tuple[int, int, dict[str, str]]:
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


def _read_headers(reader: Reader) -> dict[str, str]:
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


def keeps_alive(version: int, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    if version >= 1:
        return True
    return "keep-alive" in tokens or "keep-alive" in headers


def read_body(reader: Reader, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
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


def _read_to_close(reader: Reader) -> bytes:
    parts: list[bytes] = []
    kept = 0
    while kept < _MAX_BODY:
        data = reader.read_some(_MAX_BODY - kept)
        if not data:
            break
        parts.append(data)
        kept += len(data)
    return b"".join(parts)


def _read_chunked(reader: Reader) -> tuple[bytes, bool]:
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
