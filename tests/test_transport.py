"""``HttpTransport`` against real loopback servers: the scripted ``Ingest`` where it fits,
and small raw-socket servers for framing, keep-alive and failure edge cases."""

from __future__ import annotations

import email.utils
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest import Ingest, Reply, free_port  # type: ignore[import-not-found]
from peekapi_otel.delivery._transport import HttpTransport, SendResult

BODY = b'[{"a":1}]'
OK = b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class Conn:
    """One accepted connection with a buffered reader and a bounded timeout."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        self.sock = sock
        self.file = sock.makefile("rb")

    def read_request(self) -> tuple[dict[str, str], bytes] | None:
        """Headers (lower-cased) and body of the next request; None at EOF."""
        line = self.file.readline()
        if not line:
            return None
        assert line.startswith(b"POST /v1/events HTTP/1.1\r\n"), line
        headers: dict[str, str] = {}
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers["content-length"]))
        return headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        """Close with RST rather than FIN (SO_LINGER 0), as a crashed peer would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


Handler = Callable[["RawServer", Conn], None]


class RawServer:
    """Accepts on 127.0.0.1:0; each connection runs ``handler`` in its own thread."""

    def __init__(self, handler: Handler, context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.context = context
        self.accepts = 0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.errors: list[BaseException] = []
        self.stopped = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/v1/events"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:  # includes the accept timeout
                continue
            self.accepts += 1
            self._conns.append(sock)
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            if self.context is not None:
                sock.settimeout(10)
                sock = self.context.wrap_socket(sock, server_side=True)
                self._conns.append(sock)
            self.handler(self, Conn(sock))
        except (OSError, ValueError) as exc:  # the client may hang up or fail TLS
            self.errors.append(exc)

    def request(self, conn: Conn) -> bool:
        request = conn.read_request()
        if request is None:
            return False
        self.requests.append(request)
        return True

    def close(self) -> None:
        self.stopped.set()
        self._thread.join(5)
        for sock in self._conns:
            try:
                # shutdown() wakes a handler blocked in recv(); close() alone would not.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        assert not self._thread.is_alive()
        assert not any(t.is_alive() for t in self._threads)


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler, context: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def replying(*responses: bytes, then_close: bool = False) -> Handler:
    """A handler answering the n-th request on each connection with ``responses[n]``
    (the last one repeating); ``then_close`` hangs up after the scripted ones."""

    def handler(server: RawServer, conn: Conn) -> None:
        n = 0
        while server.request(conn):
            conn.send(responses[min(n, len(responses) - 1)])
            n += 1
            if then_close and n >= len(responses):
                break
        conn.close()

    return handler


def post(url: str, *, timeout: float = 5.0, **kwargs: str) -> SendResult:
    transport = HttpTransport(url, "key-1", **kwargs)
    try:
        return transport.send(BODY, timeout)
    finally:
        transport.close()


# Ordinary replies and reuse


def test_keep_alive_reuses_one_connection(serve: Callable[..., RawServer]) -> None:
    server = serve(replying(OK))
    transport = HttpTransport(server.url(), "key-1")
    try:
        results = [transport.send(BODY, 5) for _ in range(50)]
    finally:
        transport.close()
    assert all(r.ok and r.status == 200 and r.excerpt == '{"ok":true}' for r in results)
    assert server.accepts == 1
    assert len(server.requests) == 50


def test_request_headers_and_body(serve: Callable[..., RawServer]) -> None:
    server = serve(replying(OK))
    result = post(server.url())
    assert result.ok
    headers, body = server.requests[0]
    assert body == BODY
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(BODY))
    assert headers["x-api-key"] == "key-1"
    assert headers["x-peekapi-sdk"].startswith("python-otel/")
    assert headers["user-agent"].startswith("peekapi-otel/")
    assert "content-encoding" not in headers


def test_host_header_omits_default_port() -> None:
    assert (
        b"\r\nHost: example.com\r\n" in HttpTransport("https://example.com/v1", "k")._request_head
    )
    assert (
        b"\r\nHost: example.com:8443\r\n"
        in HttpTransport("https://example.com:8443/", "k")._request_head
    )
    assert (
        b"\r\nHost: example.com\r\n" in HttpTransport("http://example.com:80/v1", "k")._request_head
    )
    assert (
        b"POST /v1?a=b HTTP/1.1\r\n"
        in HttpTransport("http://example.com/v1?a=b", "k")._request_head
    )
    assert b"\r\nHost: [::1]:8080\r\n" in HttpTransport("http://[::1]:8080/v1", "k")._request_head


def test_header_injection_is_an_error_result() -> None:
    result = HttpTransport("http://127.0.0.1:9/v1", "bad\r\nkey").send(BODY, 1)
    assert result.status is None
    assert result.error is not None


def test_gzip_body_decodes_at_the_server(ingest: Ingest) -> None:
    events = [{"n": i, "route": "/x" * 20} for i in range(100)]
    raw = json.dumps(events).encode()
    transport = HttpTransport(ingest.url, "key-1", compression="gzip")
    try:
        assert transport.send(raw, 5).ok
    finally:
        transport.close()
    request = ingest.requests[0]
    assert request.headers["content-encoding"] == "gzip"
    assert request.events == events
    assert int(request.headers["content-length"]) < len(raw)
    assert request.body == raw  # decompressed by the ingest


def test_content_length_body(serve: Callable[..., RawServer]) -> None:
    body = "é".encode() * 400
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server = serve(replying(reply, OK))
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.status == 400
    assert not first.ok
    assert first.excerpt == "é" * 150  # 300 bytes decoded
    assert second.ok
    assert server.accepts == 1


def test_chunked_body_with_extensions_and_trailers(serve: Callable[..., RawServer]) -> None:
    reply = (
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
        b"Retry-After: 7\r\n\r\n"
        b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"
    )
    server = serve(replying(reply, OK))
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.status == 503
    assert first.excerpt == "hello, world"
    assert first.retry_after == 7.0
    assert second.ok
    assert server.accepts == 1  # the trailers were consumed: the connection stayed usable


def test_no_length_reads_until_close(serve: Callable[..., RawServer]) -> None:
    reply = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nupstream down"
    server = serve(replying(reply, then_close=True))
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.status == 502
    assert first.excerpt == "upstream down"
    assert second.status == 502
    assert server.accepts == 2


def test_connection_close_with_length_is_not_reused(serve: Callable[..., RawServer]) -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = serve(replying(reply, then_close=True))
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert all(transport.send(BODY, 5).ok for _ in range(3))
    finally:
        transport.close()
    assert server.accepts == 3
    assert len(server.requests) == 3


def test_http10_response(serve: Callable[..., RawServer]) -> None:
    reply = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = serve(replying(reply, then_close=True))
    transport = HttpTransport(server.url(), "key-1")
    try:
        results = [transport.send(BODY, 5) for _ in range(2)]
    finally:
        transport.close()
    assert all(r.ok and r.excerpt == "ok" for r in results)
    assert server.accepts == 2  # HTTP/1.0 without keep-alive closes


def test_http10_keep_alive_response_is_reused(serve: Callable[..., RawServer]) -> None:
    reply = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    server = serve(replying(reply))
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert all(transport.send(BODY, 5).ok for _ in range(3))
    finally:
        transport.close()
    assert server.accepts == 1


def test_interim_responses_are_skipped(serve: Callable[..., RawServer]) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone"
    )
    server = serve(replying(reply, OK))
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.status == 202
    assert first.excerpt == "done"
    assert second.ok
    assert server.accepts == 1


def test_429_retry_after_seconds_and_date(ingest: Ingest) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    ingest.script.append(Reply(status=429, headers={"Retry-After": "12"}))
    ingest.script.append(Reply(status=429, headers={"retry-after": when}))
    transport = HttpTransport(ingest.url, "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
        third = transport.send(BODY, 5)
    finally:
        transport.close()
    assert (first.status, first.retry_after) == (429, 12.0)
    assert second.status == 429
    assert second.retry_after is not None
    assert 25 <= second.retry_after <= 31
    assert third.ok
    assert third.retry_after is None


def test_redirect_is_reported_not_followed(ingest: Ingest) -> None:
    ingest.script.append(Reply(status=301, headers={"Location": "https://elsewhere/v1"}))
    result = post(ingest.url)
    assert result.status == 301
    assert not result.ok
    assert result.location == "https://elsewhere/v1"
    assert len(ingest.requests) == 1


# Stale connections, failures and timeouts


def test_idle_connection_closed_by_server_is_retried_once(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(replying(OK, then_close=True))  # closes each connection after one reply
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        time.sleep(0.2)  # let the FIN arrive while idle
        second = transport.send(BODY, 5)
        third = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.ok
    assert second.ok
    assert third.ok
    assert server.accepts == 3
    assert len(server.requests) == 3


def test_idle_connection_reset_by_server_is_retried_once(
    serve: Callable[..., RawServer],
) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        conn.send(OK)
        conn.reset()

    server = serve(handler)
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert transport.send(BODY, 5).ok
        time.sleep(0.2)
        assert transport.send(BODY, 5).ok
    finally:
        transport.close()
    assert server.accepts == 2


def test_fresh_connection_closed_without_reply_is_not_retried(
    serve: Callable[..., RawServer],
) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        conn.close()

    server = serve(handler)
    result = post(server.url())
    assert result.status is None
    assert result.error is not None
    assert "RemoteDisconnected" in result.error
    assert server.accepts == 1


def test_reset_after_the_status_line_is_not_retried(serve: Callable[..., RawServer]) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        conn.send(OK)
        server.request(conn)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        conn.reset()

    server = serve(handler)
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert transport.send(BODY, 5).ok
        result = transport.send(BODY, 5)
    finally:
        transport.close()
    assert result.error is not None
    assert server.accepts == 1  # the server had the request: resending would duplicate it


def test_server_never_answers_times_out(serve: Callable[..., RawServer]) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        server.stopped.wait(30)
        conn.close()

    server = serve(handler)
    started = time.monotonic()
    result = post(server.url(), timeout=0.5)
    elapsed = time.monotonic() - started
    assert result == SendResult(error="timed out after 0.5s")
    assert 0.4 <= elapsed < 2.5


def test_a_trickling_reply_is_cut_at_the_timeout(serve: Callable[..., RawServer]) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40:
            if server.stopped.wait(0.1):
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
        conn.close()

    server = serve(handler)
    started = time.monotonic()
    result = post(server.url(), timeout=0.8)
    elapsed = time.monotonic() - started
    # Every single recv gets a byte in time; the whole reply would take about 8 s.
    assert result == SendResult(error="timed out after 0.8s")
    assert 0.7 <= elapsed < 2.5


def test_timeout_then_next_send_uses_a_new_connection(serve: Callable[..., RawServer]) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        server.request(conn)
        if server.accepts == 1:
            server.stopped.wait(30)
        else:
            conn.send(OK)
        conn.close()

    server = serve(handler)
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert transport.send(BODY, 0.3).error == "timed out after 0.3s"
        assert transport.send(BODY, 5).ok
    finally:
        transport.close()
    assert server.accepts == 2


def test_connection_refused_is_an_error_result() -> None:
    result = post(f"http://127.0.0.1:{free_port()}/v1/events", timeout=2)
    assert result.status is None
    assert result.error is not None
    assert "Refused" in result.error


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: %d\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"Connection: close\r\n\r\n",
    ],
    ids=["length", "chunked", "until-close"],
)
def test_large_body_is_cut_and_next_send_works(
    serve: Callable[..., RawServer], framing: bytes
) -> None:
    big = b"x" * 200_000
    if b"chunked" in framing:
        payload = b"".join(
            b"%x\r\n%s\r\n" % (30_000, big[i : i + 30_000]) for i in range(0, 180_000, 30_000)
        )
        payload += b"%x\r\n%s\r\n0\r\n\r\n" % (20_000, big[:20_000])
        head = framing
    elif b"%d" in framing:
        payload, head = big, framing % len(big)
    else:
        payload, head = big, framing

    def handler(server: RawServer, conn: Conn) -> None:
        n = 0
        while server.request(conn):
            n += 1
            if len(server.requests) == 1:
                try:
                    conn.send(b"HTTP/1.1 200 OK\r\n" + head + payload)
                except OSError:
                    pass  # the client may hang up once it has read enough
                break
            conn.send(OK)
        conn.close()

    server = serve(handler)
    transport = HttpTransport(server.url(), "key-1")
    try:
        first = transport.send(BODY, 5)
        second = transport.send(BODY, 5)
        third = transport.send(BODY, 5)
    finally:
        transport.close()
    assert first.ok
    assert first.excerpt == "x" * 300
    assert second.ok
    assert third.ok
    assert server.accepts == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 OK 200\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-H: 1\r\n" * 200 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    ],
    ids=[
        "swapped",
        "icy",
        "http2",
        "garbage",
        "no-colon",
        "bad-length",
        "conflicting-length",
        "bad-chunk",
        "too-many-headers",
        "long-line",
        "truncated",
        "chunk-0x",
        "chunk-overrun",
        "eof-in-headers",
    ],
)
def test_malformed_reply_is_an_error_result(serve: Callable[..., RawServer], reply: bytes) -> None:
    def handler(server: RawServer, conn: Conn) -> None:
        if server.request(conn):
            try:
                conn.send(reply)
            except OSError:
                pass
        conn.close()

    server = serve(handler)
    result = post(server.url())
    assert result.status is None
    assert result.error is not None
    assert server.accepts == 1


def test_a_forked_child_leaves_the_parents_connection_alone(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(replying(OK))
    transport = HttpTransport(server.url(), "key-1")
    try:
        assert transport.send(BODY, 5).ok
        pid = os.fork()
        if pid == 0:  # the child: its own connection; the parent's is never closed
            code = 1
            try:
                code = 0 if transport.send(BODY, 5).ok else 1
                transport.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert transport.send(BODY, 5).ok  # still the first connection
    finally:
        transport.close()
    assert server.accepts == 2


# HTTPS


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate naming only ``localhost``, and a server context for it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_https_verifies_certificate_and_hostname(
    serve: Callable[..., RawServer],
    tls: tuple[Path, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, context = tls
    server = serve(replying(OK), context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    transport = HttpTransport(server.url("localhost", "https"), "key-1")
    try:
        results = [transport.send(BODY, 5) for _ in range(3)]
    finally:
        transport.close()
    assert all(r.ok for r in results), results
    assert server.accepts == 1
    assert server.requests[0][0]["host"] == f"localhost:{server.port}"

    wrong = post(server.url("127.0.0.1", "https"))
    assert wrong.status is None
    assert wrong.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in wrong.error


def test_https_untrusted_certificate_is_an_error_result(
    serve: Callable[..., RawServer],
    tls: tuple[Path, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, context = tls
    server = serve(replying(OK), context)
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    result = post(server.url("localhost", "https"))
    assert result.status is None
    assert result.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert not server.requests
