"""Request and response sizes counted by the ASGI layer for every kind of framing: a
Content-Length, a chunked HTTP/1.1 body, an HTTP/2 body with no length header, an
HTTP/1.1 request with no body headers, a streamed response and HEAD. The app runs
through the real OpenTelemetry ASGI middleware; events come from ``capture_events``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from peekapi_otel.testing import capture_events

CHUNKS = (b"hello ", b"chunked ", b"world")


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    read = 0
    while True:
        message = await receive()
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if scope["path"] == "/fail-before-response":
        raise RuntimeError("the app failed before answering")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] in ("/fail-mid-stream", "/no-last-body"):
        await send({"type": "http.response.body", "body": b"x" * 7, "more_body": True})
        if scope["path"] == "/fail-mid-stream":
            raise RuntimeError("the app failed while streaming")
        return
    if scope["path"] == "/stream":
        for part in (b"a" * 10, b"b" * 20):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"c" * 5})
    else:
        await send({"type": "http.response.body", "body": str(read).encode()})


def _call(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], *, version: str
) -> None:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(CHUNKS) - 1}
        for i, chunk in enumerate(CHUNKS if method == "POST" else (b"",))
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    asyncio.run(app(scope, receive, send))


BODY = sum(len(c) for c in CHUNKS)


@pytest.mark.parametrize(
    ("method", "path", "headers", "version", "sizes"),
    [
        ("POST", "/", [(b"content-length", str(BODY).encode())], "1.1", (BODY, 2)),
        ("POST", "/", [(b"transfer-encoding", b"chunked")], "1.1", (BODY, 2)),
        ("POST", "/", [], "2", (BODY, 2)),
        ("GET", "/", [], "1.1", (0, 1)),
        ("GET", "/", [], "1.0", (0, 1)),
        ("GET", "/stream", [], "1.1", (0, 35)),
        ("HEAD", "/", [], "1.1", (0, 0)),
    ],
    ids=["content-length", "chunked", "http2-no-length", "no-body", "http1.0", "stream", "head"],
)
def test_sizes(
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    version: str,
    sizes: tuple[int, int],
) -> None:
    provider = TracerProvider()
    with capture_events(provider) as captured:
        # Built after the processor exists, as the zero-code path builds it.
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        _call(app, method, path, [(b"x-api-key", b"k1"), *headers], version=version)
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == sizes
    assert event["consumer_id"].startswith("hash_")


@pytest.mark.parametrize(
    ("path", "sizes"),
    [
        ("/fail-before-response", (BODY, 0)),
        ("/fail-mid-stream", (BODY, 7)),
        ("/no-last-body", (BODY, 7)),
    ],
)
def test_sizes_when_the_app_ends_without_a_last_body(path: str, sizes: tuple[int, int]) -> None:
    """Whatever way the app ends, the event has the consumer and the bytes counted so far."""
    provider = TracerProvider()
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        headers = [(b"x-api-key", b"k1"), (b"transfer-encoding", b"chunked")]
        if path.startswith("/fail"):
            with pytest.raises(RuntimeError):
                _call(app, "POST", path, headers, version="1.1")
        else:
            _call(app, "POST", path, headers, version="1.1")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == sizes
    assert event["consumer_id"].startswith("hash_")


@pytest.mark.parametrize("path", ["/", "/stream"])
def test_sizes_under_attribute_limits(path: str) -> None:
    """With a value-length limit the SDK's own setter is used for every update."""
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=64))
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        headers = [(b"x-api-key", b"k1"), (b"transfer-encoding", b"chunked")]
        _call(app, "POST", path, headers, version="1.1")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == (BODY, 35 if path == "/stream" else 2)


def test_sizes_without_the_context_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """With another runtime context the layer finds the span through the API."""
    monkeypatch.setattr("peekapi_otel.otel._sdk._context.CONTEXT_GET", None)
    provider = TracerProvider()
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        headers = [(b"x-api-key", b"k1"), (b"transfer-encoding", b"chunked")]
        _call(app, "POST", "/stream", headers, version="1.1")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == (BODY, 35)
    assert event["consumer_id"].startswith("hash_")


@pytest.mark.parametrize(
    ("headers", "sizes", "consumer"),
    [
        ([(b"X-Api-Key", b"k1"), (b"Content-Length", str(BODY).encode())], (BODY, 2), "k1"),
        (
            [(b"Transfer-Encoding", b"chunked"), (b"AUTHORIZATION", b"Bearer t")],
            (BODY, 2),
            "Bearer t",
        ),
        # The first configured consumer header present wins, wherever it comes.
        ([(b"authorization", b"Bearer t"), (b"x-api-key", b"k1")], (0, 2), "k1"),
        # An empty header is no credential: the next configured one counts (as in WSGI).
        ([(b"x-api-key", b""), (b"authorization", b"Bearer t")], (0, 2), "Bearer t"),
    ],
    ids=["capitalised", "upper-case", "priority", "empty-first-choice"],
)
def test_header_names_in_any_case(
    headers: list[tuple[bytes, bytes]], sizes: tuple[int, int], consumer: str
) -> None:
    from peekapi_otel.core._hashing import hash_consumer

    provider = TracerProvider()
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        _call(app, "POST", "/", headers, version="1.1")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == sizes
    assert event["consumer_id"] == hash_consumer(consumer)


def test_capture_events_gives_the_asgi_layer_and_the_guard_their_settings_back() -> None:
    """``capture_events`` with its own consumer headers must leave the process as it
    found it: afterwards ``x-api-key`` identifies consumers again on ASGI, and captured
    ``authorization`` headers are hashed again by the credential guard."""
    from peekapi_otel.core._hashing import hash_consumer
    from peekapi_otel.otel._state import STATE

    provider = TracerProvider()
    before = STATE.rule
    with capture_events(provider, consumer_headers=("x-tenant",)) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        _call(app, "GET", "/", [(b"x-tenant", b"t1"), (b"x-api-key", b"k1")], version="1.1")
        (event,) = captured.events
    assert event["consumer_id"] == hash_consumer("t1")
    assert STATE.rule is before
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        _call(app, "GET", "/", [(b"x-tenant", b"t1"), (b"x-api-key", b"k1")], version="1.1")
        (event,) = captured.events
    assert event["consumer_id"] == hash_consumer("k1")


def test_nested_capture_events_gives_the_outer_processor_its_asgi_settings_back() -> None:
    from peekapi_otel.core._hashing import hash_consumer

    provider = TracerProvider()
    headers = [(b"x-outer", b"o1"), (b"x-api-key", b"k1")]
    with capture_events(provider, consumer_headers=("x-outer",)) as outer:
        with capture_events(TracerProvider()):
            pass
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        _call(app, "GET", "/", headers, version="1.1")
        (event,) = outer.events
    assert event["consumer_id"] == hash_consumer("o1")
