"""No raw credential reaches any exporter; consumer IDs follow the hash rule.

In-process with real FastAPI and Flask apps through their real instrumentations (default
semconv mode), header capture of ``authorization``, ``x-api-key`` and ``cookie`` on, our
processor sending to a loopback ingest, and an in-memory plus a console exporter beside
it. The framework matrix (all modes) is in ``tests/frameworks``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ingest import Ingest
from peekapi_otel import PeekApiSpanProcessor, stats
from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.otel import _sdk
from peekapi_otel.otel._credentials import REDACTED

API_KEY = "sk-live-CREDKEY-31337"
TOKEN = "Bearer tok-CREDTOKEN-4242"
COOKIE = "session=sess-CREDCOOKIE-99"
PROXY = "Basic cHJveHktQ1JFRFBST1hZ"
SECRETS = (API_KEY, TOKEN, COOKIE, PROXY, "CREDKEY", "CREDTOKEN", "CREDCOOKIE", "CREDPROXY")


def sha(value: str) -> str:
    return "hash_" + hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass
class Setup:
    provider: TracerProvider
    processor: PeekApiSpanProcessor
    memory: InMemorySpanExporter
    console: io.StringIO
    ingest: Ingest

    def events(self, count: int) -> list[dict[str, Any]]:
        assert self.processor.force_flush(10_000)
        events = self.ingest.wait_for(count, timeout=10)
        assert len(events) == count, events
        return events

    def exporter_output(self) -> str:
        memory = json.dumps(
            [dict(s.attributes or {}) for s in self.memory.get_finished_spans()], default=list
        )
        bodies = b"".join(r.body for r in self.ingest.requests).decode()
        return memory + self.console.getvalue() + bodies


@pytest.fixture(autouse=True, params=["ending-hook", "write-guard"])
def credential_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both ways the guard works: cleaning the span as it ends (SDKs
    with the ending hook) and cleaning each attribute write (the others, e.g. 1.39)."""
    if request.param == "ending-hook":
        if not _sdk.ENDING_HOOK:
            pytest.skip("this SDK has no ending hook")
    else:
        monkeypatch.setattr(_sdk, "ENDING_HOOK", False)
    return str(request.param)


@pytest.fixture
def capture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        "authorization,x-api-key,cookie,proxy-authorization,x-tenant",
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "set-cookie")


def make_setup(ingest: Ingest, tmp_path: Path, **options: Any) -> Setup:
    provider = TracerProvider()
    processor = PeekApiSpanProcessor(
        api_key="k",
        endpoint=ingest.url,
        flush_interval=0.2,
        storage_path=str(tmp_path / "spool"),
        **options,
    )
    memory = InMemorySpanExporter()
    console = io.StringIO()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=console)))
    return Setup(provider, processor, memory, console, ingest)


@pytest.fixture
def setup(ingest: Ingest, tmp_path: Path, capture_env: None) -> Iterator[Setup]:
    s = make_setup(ingest, tmp_path)
    yield s
    s.provider.shutdown()


def fastapi_client(provider: TracerProvider, hooks: bool = True) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = FastAPI()

    @app.get("/who")
    def who() -> JSONResponse:
        response = JSONResponse({"ok": "yes"})
        response.set_cookie("sid", "set-CREDSETCOOKIE-1")
        return response

    kwargs = instrumentor_kwargs("fastapi") if hooks else {}
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, **kwargs)
    return TestClient(app)


def flask_client(provider: TracerProvider) -> Any:
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask(__name__)

    @app.get("/who")
    def who() -> dict[str, str]:
        return {"ok": "yes"}

    FlaskInstrumentor.instrument_app(app, tracer_provider=provider, **instrumentor_kwargs("flask"))
    return app.test_client(use_cookies=False)


ALL = {"X-API-Key": API_KEY, "Authorization": TOKEN, "Cookie": COOKIE, "Proxy-Authorization": PROXY}


@pytest.mark.parametrize("make_client", [fastapi_client, flask_client], ids=["fastapi", "flask"])
def test_no_raw_secret_in_any_exporter_and_the_hash_rule(setup: Setup, make_client: Any) -> None:
    client = make_client(setup.provider)
    cases = [
        (ALL, sha(API_KEY)),  # x-api-key first
        ({"Authorization": TOKEN, "Cookie": COOKIE}, sha(TOKEN)),  # the full header value
        ({"Cookie": COOKIE, "Proxy-Authorization": PROXY}, None),  # never a consumer
        ({}, None),
    ]
    for headers, _ in cases:
        assert client.get("/who", headers=headers).status_code == 200
    events = setup.events(len(cases))
    by_order = sorted(events, key=lambda e: e["timestamp"])
    assert [e["consumer_id"] for e in by_order] == [c for _, c in cases]

    output = setup.exporter_output()
    for secret in (*SECRETS, "CREDSETCOOKIE"):
        assert secret not in output
    # Capture really happened: hashed consumer headers, redacted others.
    (first, *_) = sorted(
        (s for s in setup.memory.get_finished_spans() if s.kind is SpanKind.SERVER),
        key=lambda s: s.start_time or 0,
    )
    attrs = first.attributes or {}
    assert tuple(attrs["http.request.header.x_api_key"]) == (sha(API_KEY),)
    assert tuple(attrs["http.request.header.authorization"]) == (sha(TOKEN),)
    assert tuple(attrs["http.request.header.cookie"]) == (REDACTED,)
    assert tuple(attrs["http.request.header.proxy_authorization"]) == (REDACTED,)
    assert sha(API_KEY) in setup.console.getvalue()


def test_consumer_from_captured_header_without_our_hooks(setup: Setup) -> None:
    """Hooks not passed: the consumer comes from the captured (already hashed) header."""
    client = fastapi_client(setup.provider, hooks=False)
    assert client.get("/who", headers={"Authorization": TOKEN}).status_code == 200
    (event,) = setup.events(1)
    assert event["consumer_id"] == sha(TOKEN)
    assert TOKEN not in setup.exporter_output()


@pytest.mark.parametrize("make_client", [fastapi_client, flask_client], ids=["fastapi", "flask"])
def test_identify_consumer_overrides_the_rule(
    ingest: Ingest, tmp_path: Path, capture_env: None, make_client: Any
) -> None:
    seen: list[Mapping[str, str]] = []

    def identify(headers: Mapping[str, str]) -> str | None:
        seen.append(dict(headers))
        return headers.get("x-tenant")

    s = make_setup(ingest, tmp_path, identify_consumer=identify)
    try:
        client = make_client(s.provider)
        assert client.get("/who", headers={**ALL, "X-Tenant": "acme"}).status_code == 200
        assert client.get("/who", headers={"X-API-Key": API_KEY}).status_code == 200
        events = sorted(s.events(2), key=lambda e: e["timestamp"])
        assert [e["consumer_id"] for e in events] == ["acme", None]
        assert seen
        assert all(isinstance(k, str) and k == k.lower() for h in seen for k in h)
        assert seen[0]["x-tenant"] == "acme"
        for secret in SECRETS:
            assert secret not in s.exporter_output()
    finally:
        s.provider.shutdown()


@pytest.mark.parametrize("make_client", [fastapi_client, flask_client], ids=["fastapi", "flask"])
def test_identify_consumer_that_raises_sends_the_event_without_consumer(
    ingest: Ingest, tmp_path: Path, capture_env: None, make_client: Any
) -> None:
    def identify(headers: Mapping[str, str]) -> str | None:
        raise RuntimeError("user bug")

    s = make_setup(ingest, tmp_path, identify_consumer=identify)
    try:
        client = make_client(s.provider)
        assert client.get("/who", headers=ALL).status_code == 200
        assert client.get("/who", headers=ALL).status_code == 200
        events = s.events(2)
        assert [e["consumer_id"] for e in events] == [None, None]
        assert all(e["path"] == "/who" and e["status_code"] == 200 for e in events)
        dropped = stats()["dropped"]
        assert isinstance(dropped, dict)
        assert dropped["consumer_error"] == 2
        assert API_KEY not in s.exporter_output()
    finally:
        s.provider.shutdown()


def test_custom_consumer_headers_are_hashed_the_rest_redacted(
    ingest: Ingest, tmp_path: Path, capture_env: None
) -> None:
    s = make_setup(ingest, tmp_path, consumer_headers=["x-tenant"])
    try:
        client = fastapi_client(s.provider)
        assert client.get("/who", headers={**ALL, "X-Tenant": "acme"}).status_code == 200
        (event,) = s.events(1)
        assert event["consumer_id"] == sha("acme")
        (span,) = [x for x in s.memory.get_finished_spans() if x.kind is SpanKind.SERVER]
        attrs = span.attributes or {}
        assert tuple(attrs["http.request.header.x_tenant"]) == (sha("acme"),)
        # No longer a consumer header, still a credential: redacted.
        assert tuple(attrs["http.request.header.x_api_key"]) == (REDACTED,)
        assert tuple(attrs["http.request.header.authorization"]) == (REDACTED,)
        assert "acme" not in s.exporter_output()
    finally:
        s.provider.shutdown()


def test_guard_covers_every_write_path_on_server_and_client_spans(setup: Setup) -> None:
    tracer = setup.provider.get_tracer("test")
    for kind in (SpanKind.SERVER, SpanKind.CLIENT):
        with tracer.start_as_current_span("s", kind=kind) as span:
            span.set_attribute("http.request.header.x_api_key", [API_KEY])
            span.set_attributes(
                {
                    "http.request.header.authorization": TOKEN,
                    "http.request.header.cookie": [COOKIE, COOKIE],
                    "http.response.header.set_cookie": ["a=CREDCOOKIE"],
                    "http.request.header.proxy_authorization": [PROXY],
                    "http.request.header.user_agent": ["curl"],
                }
            )
            span.set_attribute("http.request.header.x_api_key", [sha(API_KEY)])  # idempotent
    for span in setup.memory.get_finished_spans():
        attrs = span.attributes or {}
        assert tuple(attrs["http.request.header.x_api_key"]) == (sha(API_KEY),)
        assert attrs["http.request.header.authorization"] == sha(TOKEN)
        assert tuple(attrs["http.request.header.cookie"]) == (REDACTED,)
        assert tuple(attrs["http.response.header.set_cookie"]) == (REDACTED,)
        assert tuple(attrs["http.request.header.proxy_authorization"]) == (REDACTED,)
        assert tuple(attrs["http.request.header.user_agent"]) == ("curl",)
    for secret in SECRETS:
        assert secret not in setup.exporter_output()
