"""The distro's defaults and hook injection, in process (the end-to-end runs under
``opentelemetry-instrument`` are in ``tests/zerocode``)."""

from __future__ import annotations

import os

import pytest

from peekapi_otel.otel import _distro as distro
from peekapi_otel.otel._configure import SANITIZE, merge_env_list
from peekapi_otel.otel._instrumentors import with_hooks
from peekapi_otel.otel._state import STATE


def test_defaults_only_fill_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(SANITIZE, "x-secret")
    distro._defaults()
    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert os.environ["OTEL_METRICS_EXPORTER"] == "none"
    assert os.environ["OTEL_LOGS_EXPORTER"] == "none"
    assert os.environ[SANITIZE] == "x-secret,cookie,set-cookie,proxy-authorization"


def test_merge_env_list_keeps_the_users_entries_and_adds_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("X_LIST", " Cookie , other")
    merge_env_list("X_LIST", ["cookie", "set-cookie"])
    merge_env_list("X_LIST", ["set-cookie"])
    assert os.environ["X_LIST"] == "Cookie,other,set-cookie"


def test_flask_and_django_get_our_hooks_chained_with_theirs() -> None:
    calls: list[str] = []

    def theirs(*args: object) -> None:
        calls.append("theirs")

    kwargs = with_hooks("flask", {"request_hook": theirs, "excluded_urls": "x"})
    assert kwargs["excluded_urls"] == "x"
    assert kwargs["request_hook"] is not theirs
    assert callable(kwargs["response_hook"])
    assert set(with_hooks("django", {})) == {"request_hook", "response_hook"}


def test_fastapi_drops_send_receive_spans_only_when_traces_go_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setattr(STATE, "distro_active", False)
    monkeypatch.setattr(STATE, "cut_message_spans", False)
    # Programmatic use: whatever the environment says, the user's traces keep
    # OpenTelemetry's defaults (only zero-code knows no exporter is configured).
    assert "exclude_spans" not in with_hooks("fastapi", {})
    distro.PeekApiDistro()._configure()
    assert with_hooks("fastapi", {})["exclude_spans"] == ["send", "receive"]
    # The user's choice wins.
    assert with_hooks("fastapi", {"exclude_spans": []})["exclude_spans"] == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    distro.PeekApiDistro()._configure()
    assert "exclude_spans" not in with_hooks("fastapi", {})
    assert "exclude_spans" not in with_hooks("starlette", {})


def _span_names_of_one_request(cut: bool, **middleware_kwargs: object) -> tuple[list[str], dict]:
    """Run one request through a hand-built OpenTelemetryMiddleware with a PeekAPI
    processor attached; the span names an exporter sees and the event."""
    import asyncio

    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from peekapi_otel.testing import capture_events

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]

    async def receive() -> dict:  # type: ignore[type-arg]
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        return None

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"h"), (b"x-api-key", b"k")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    old = STATE.cut_message_spans
    STATE.cut_message_spans = cut
    try:
        with capture_events(provider) as captured:
            middleware = OpenTelemetryMiddleware(app, tracer_provider=provider, **middleware_kwargs)  # type: ignore[arg-type]
            asyncio.run(middleware(scope, receive, send))
            (event,) = captured.events
    finally:
        STATE.cut_message_spans = old
    return sorted(s.name for s in spans.get_finished_spans()), event


def test_asgi_middleware_leaves_out_message_spans_only_when_told_and_not_chosen() -> None:
    full = ["GET /x", "GET /x http send", "GET /x http send"]
    cut, event = _span_names_of_one_request(cut=True)
    assert cut == ["GET /x"]
    assert (event["response_size"], event["consumer_id"]) == (5, _hash("k"))
    assert _span_names_of_one_request(cut=False)[0] == full
    # The caller's explicit choice wins, whatever it is.
    assert _span_names_of_one_request(cut=True, exclude_spans=None)[0] == full
    assert _span_names_of_one_request(cut=True, exclude_spans=["send"])[0] == ["GET /x"]
    assert _span_names_of_one_request(cut=True, exclude_spans=["receive"])[0] == full


def test_distro_tells_asgi_middlewares_to_cut_only_when_traces_go_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The distro writes its defaults into the environment and marks itself active.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setattr(STATE, "distro_active", False)
    monkeypatch.setattr(STATE, "cut_message_spans", False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    distro.PeekApiDistro()._configure()
    assert STATE.cut_message_spans is False
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    distro.PeekApiDistro()._configure()
    assert STATE.cut_message_spans is True


def _hash(value: str) -> str:
    from peekapi_otel.core._hashing import hash_consumer

    return hash_consumer(value)
