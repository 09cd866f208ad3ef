"""`peekapi-otel serve` against hostile or broken clients: every malformed body gets a 4xx
with a reason, browsers from other sites and rebinding pages are refused, refusals are
logged and counted, and the required key can come from a file or the environment."""

from __future__ import annotations

import importlib
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server._refusals import RefusalLog

_serve = importlib.import_module(".test_serve", __package__)
serve_factory = _serve.serve_factory
ingest = _serve.ingest
post, request, make_event, stored = _serve.post, _serve.request, _serve.make_event, _serve.stored

pytestmark = pytest.mark.slow

_EVENT = json.dumps(make_event(1))


def _event_with(field: str, raw_value: str) -> bytes:
    """One event whose ``field`` is the literal JSON text ``raw_value``."""
    event = make_event(1)
    event[field] = "__RAW__"
    return ("[" + json.dumps(event).replace('"__RAW__"', raw_value) + "]").encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper"),
        (b"[" * 40 + b"]" * 40, "nested deeper"),
        (_event_with("request_size", "1" + "0" * 5000), "too many digits"),
        (_event_with("status_code", str(2**63)), "64-bit"),
        (_event_with("response_size", str(2**64 + 5)), "64-bit"),
        (_event_with("metadata", '{"n": ' + str(2**63) + "}"), "64-bit"),
        (_event_with("path", '"/a\\ud800b"'), "lone surrogate"),
        (_event_with("consumer_id", '"\\udfff"'), "lone surrogate"),
        (_event_with("metadata", '{"\\ud800": 1}'), "lone surrogate"),
        (_event_with("response_time_ms", "NaN"), "NaN"),
        (_event_with("response_time_ms", "1e999"), "too large"),
        (b"\xc3\x28", "not UTF-8"),
    ],
    ids=[
        "deep",
        "nested-40",
        "5000-digits",
        "2^63",
        "2^64",
        "2^63-in-metadata",
        "surrogate-path",
        "surrogate-consumer",
        "surrogate-key",
        "nan",
        "inf",
        "bad-utf8",
    ],
)
def test_every_malformed_body_gets_a_4xx_with_a_reason(
    ingest: Any, body: bytes, reason: str
) -> None:
    status, reply = post(ingest.port, None, raw=body)

    assert status == 400
    assert reason in reply["error"]
    assert stored(ingest.db) == []
    # The server is still there and keeps storing.
    assert post(ingest.port, [make_event(2)])[0] == 200
    assert "Traceback" not in ingest.stderr()


def _raw_exchange(port: int, head: bytes, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


@pytest.mark.parametrize("second", ["2", str(len(_EVENT) + 2)])
def test_two_content_length_headers_are_refused(ingest: Any, second: str) -> None:
    body = ("[" + _EVENT + "]").encode()
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{ingest.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nContent-Length: {second}\r\n\r\n"
    ).encode()

    answer = _raw_exchange(ingest.port, head, body)

    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"more than one Content-Length" in answer or b"Content-Length" in answer
    assert stored(ingest.db) == []


def test_page_is_sent_with_nosniff_and_a_strict_csp(ingest: Any) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", ingest.port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        csp = response.getheader("Content-Security-Policy") or ""
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        conn.request("GET", "/api/summary")
        api = conn.getresponse()
        api.read()
        assert api.getheader("X-Content-Type-Options") == "nosniff"
    finally:
        conn.close()
    assert "default-src 'none'" in csp
    assert "script-src 'sha256-" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Origin": "http://evil.example"}, 403, "cross-site"),
        ({"Origin": "null"}, 403, "cross-site"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Content-Type": ""}, 415, "application/json"),
    ],
)
def test_cross_site_browser_posts_are_refused_without_a_key(
    ingest: Any, headers: dict[str, str], status: int, reason: str
) -> None:
    got, reply = post(ingest.port, [make_event(1)], headers=headers)

    assert got == status
    assert reason in reply["error"]
    assert stored(ingest.db) == []


def test_own_origin_and_json_are_accepted_without_a_key(ingest: Any) -> None:
    own = {"Origin": f"http://127.0.0.1:{ingest.port}"}
    charset = {"Content-Type": "application/json; charset=utf-8"}

    assert post(ingest.port, [make_event(1)], headers=own)[0] == 200
    assert post(ingest.port, [make_event(2)], headers=charset)[0] == 200
    assert len(stored(ingest.db)) == 2


@pytest.mark.parametrize(
    ("host", "extra", "status"),
    [
        ("evil.example", (), 403),
        ("rebind.attacker.test:8787", (), 403),
        ("localhost", (), 200),
        ("127.0.0.1", (), 200),
        ("[::1]", (), 200),
        ("192.168.1.20", (), 200),
        ("dash.internal", ("--allow-host", "dash.internal"), 200),
    ],
)
def test_dashboard_answers_only_to_its_own_host_names(
    serve_factory: Any, host: str, extra: tuple[str, ...], status: int
) -> None:
    running = serve_factory(*extra)
    post(running.port, [make_event(1)])
    port_host = host if ":" in host.rsplit("]", 1)[-1] else f"{host}:{running.port}"

    for path in ("/", "/api/summary"):
        got, body = request(running.port, "GET", path, headers={"Host": port_host})
        assert got == status, (path, body[:200])
        if status == 403:
            assert b"Host not allowed" in body
            assert b"/items/" not in body
    # Health checks come from anywhere (container names, load balancers).
    assert request(running.port, "GET", "/healthz", headers={"Host": port_host})[0] == 200


def _keyed(running: Any) -> None:
    status, _reply = post(running.port, [make_event(1)])
    assert status == 401
    assert post(running.port, [make_event(1)], headers={"x-api-key": "s3cret-key"})[0] == 200
    assert len(stored(running.db)) == 1
    assert "s3cret-key" not in running.stderr()


def test_key_from_the_environment(serve_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEEKAPI_SERVE_API_KEY", "s3cret-key")
    running = serve_factory()
    _keyed(running)
    assert "x-api-key required (from PEEKAPI_SERVE_API_KEY)" in running.stderr()


def test_key_from_a_file(serve_factory: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    running = serve_factory("--api-key-file", str(key_file))
    _keyed(running)
    assert "x-api-key required (from --api-key-file" in running.stderr()


def test_no_key_says_any_key_is_accepted(ingest: Any) -> None:
    assert post(ingest.port, [make_event(1)], headers={"x-api-key": "anything"})[0] == 200
    assert "any x-api-key (or none) is accepted" in ingest.stderr()


@pytest.mark.parametrize("content", ["", "\n", "two\nlines\n"])
def test_unusable_key_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content)
    result = _serve._run_cli("serve", "--port", "0", "--api-key-file", str(key_file))
    assert result.returncode == 2
    assert "one non-empty line" in result.stderr
    assert "Traceback" not in result.stderr


def test_refusals_are_logged_once_with_the_client_and_counted(ingest: Any) -> None:
    headers = {"x-peekapi-sdk": "python/0.1.0", "User-Agent": "ignored-when-sdk-is-set"}
    for _ in range(3):
        assert post(ingest.port, None, raw=b"[{", headers=headers)[0] == 400
    assert post(ingest.port, [make_event(1)], headers={"Origin": "http://evil.example"})[0] == 403

    health = json.loads(request(ingest.port, "GET", "/healthz")[1])
    assert health["refused"]["batches"] == 4
    by_reason = health["refused"]["by_reason"]
    (malformed,) = [n for reason, n in by_reason.items() if "malformed JSON" in reason]
    assert malformed == 3
    assert sum(by_reason.values()) == 4

    text = ingest.stderr()
    lines = [line for line in text.splitlines() if "refused" in line and "malformed" in line]
    assert len(lines) == 1, text
    assert "refused 1 batch: 400 malformed JSON" in lines[0]
    assert "from python/0.1.0 at 127.0.0.1" in lines[0]
    assert ingest.stop() == 0
    # What was not logged yet is summarised when the server stops.
    lines = [line for line in ingest.stderr().splitlines() if "malformed" in line]
    assert len(lines) == 2
    assert "refused 2 batches in the last 60 s: 400 malformed JSON" in lines[1]


def test_refusal_log_one_line_per_reason_per_interval() -> None:
    now = [1000.0]
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.refusals")
    logger.propagate = False
    logger.addHandler(_Collect())
    log = RefusalLog(logger, interval=60, clock=lambda: now[0])

    for i in range(500):
        log.refused(400, f"event {i}: missing field path", "node/1.0 at 127.0.0.1")
    log.refused(401, "missing or invalid x-api-key", "curl/8 \x1b[2J at 127.0.0.1")
    log.flush()
    assert len(records) == 2
    now[0] += 61
    log.flush()
    assert records[2:] == [
        "refused 499 batches in the last 60 s: 400 missing field path (from node/1.0 at 127.0.0.1)"
    ]
    assert "\x1b" not in records[1]
    assert "\\x1b[2J" in records[1]
    assert log.snapshot() == {
        "batches": 501,
        "by_reason": {"400 missing field path": 500, "401 missing or invalid x-api-key": 1},
    }
