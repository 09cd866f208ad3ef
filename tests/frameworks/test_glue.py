"""The framework glue in-process: Tornado's route templates, Litestar's settings (an
explicit extractor is kept), the query and route the glue adds where an older
instrumentation has none, and hooks that meet objects they do not expect."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conftest import InternalErrors
from peekapi_otel.core._mapping import MappingRules, event_of
from peekapi_otel.core._record import record_of_span
from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.otel._falcon import falcon_response_hook
from peekapi_otel.otel._framework_attrs import put_query_if_missing, put_route_if_other
from peekapi_otel.otel._litestar import install_default_route_fix, span_details
from peekapi_otel.otel._tornado import template_from_pattern, tornado_server_request_hook


@pytest.mark.parametrize(
    ("pattern", "names", "template"),
    [
        (r"/items/([0-9]+)$", ["item_id"], "/items/{item_id}"),
        (r"^/items/(?P<item_id>\d+)$", [], "/items/{item_id}"),
        (r"/a/([^/]+)/b/([0-9]+)", ["x", "y"], "/a/{x}/b/{y}"),
        (r"/a/([^/]+)/b/([0-9]+)", ["x"], "/a/{x}/b/{2}"),  # more groups than parameters
        (r"/files/(.*(?:\.txt))", ["name"], "/files/{name}"),  # nested group
        (r"/v1\.0/health", [], "/v1.0/health"),  # an escaped literal
        (r"/json", [], "/json"),
        (r"/items/\d+", [], None),  # regex syntax outside a group: no template
        (r"/(a|b)+", ["x"], None),
        (r"/broken)", [], None),
    ],
)
def test_tornado_templates(pattern: str, names: list[str], template: str | None) -> None:
    assert template_from_pattern(pattern, names) == template


def _litestar_route(**config: Any) -> tuple[int, dict[str, Any]]:
    from litestar import Litestar, get
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    @get("/items/{item_id:int}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    app = Litestar(
        route_handlers=[item],
        plugins=[OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, **config))],
    )

    async def call() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/items/7")).status_code

    status = asyncio.run(call())
    (span,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    return status, {"name": span.name, **dict(span.attributes or {})}


def test_litestar_default_extractor_gets_the_template() -> None:
    install_default_route_fix()
    status, attrs = _litestar_route()
    assert status == 200
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["name"] == "GET /items/{item_id}"


def test_litestar_explicit_extractor_is_left_alone() -> None:
    def mine(scope: Any) -> tuple[str, dict[str, Any]]:
        return "mine", {"http.route": "/mine"}

    install_default_route_fix()
    status, attrs = _litestar_route(scope_span_details_extractor=mine)
    assert status == 200
    assert attrs["http.route"] == "/mine"
    assert attrs["name"] == "mine"


def test_litestar_settings_and_the_users_own() -> None:
    def mine(scope: Any) -> tuple[str, dict[str, Any]]:
        return "mine", {}

    ours = instrumentor_kwargs("litestar")
    assert ours["scope_span_details_extractor"] is span_details
    theirs = instrumentor_kwargs("litestar", scope_span_details_extractor=mine)
    assert theirs["scope_span_details_extractor"] is mine
    status, attrs = _litestar_route(**ours)
    assert (status, attrs["http.route"]) == (200, "/items/{item_id}")


def test_hooks_never_raise_into_the_app(internal_errors: InternalErrors) -> None:
    internal_errors.expected = True
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("GET", kind=SpanKind.SERVER)
    tornado_server_request_hook(span, object())
    falcon_response_hook(span, object(), object())
    span.end()
    assert len(internal_errors) == 2


def _ended_server_span(attributes: dict[str, Any], *glue: Any) -> Any:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("GET", kind=SpanKind.SERVER, attributes=attributes)
    for step in glue:
        step(span)
    span.end()
    return span


RECEIVED = "/json?sig=secret&b=1"
OLD_AIOHTTP_URL = "http://h/json?sig=REDACTED&b=1?sig=REDACTED&b=1"  # its query twice


@pytest.mark.parametrize(
    ("attributes", "copied"),
    [
        # aiohttp-server and Tornado before their opt-in: the path alone in the target.
        ({"http.method": "GET", "http.target": "/json"}, "sig=REDACTED&b=1"),
        (
            {"http.method": "GET", "http.target": "/json", "http.url": OLD_AIOHTTP_URL},
            "sig=REDACTED&b=1",
        ),
        # Since the opt-in: the (redacted) query is in the target or in url.query.
        ({"http.method": "GET", "http.target": "/json?sig=REDACTED&b=1"}, None),
        (
            {"http.request.method": "GET", "url.path": "/json", "url.query": "sig=REDACTED&b=1"},
            None,
        ),
    ],
)
def test_the_query_is_copied_only_where_the_span_has_none(
    attributes: dict[str, Any], copied: str | None
) -> None:
    span = _ended_server_span(attributes, lambda s: put_query_if_missing(s, RECEIVED))
    assert (span.attributes or {}).get("peekapi.query") == copied
    event = event_of(record_of_span(span), MappingRules(collect_query_string=True))
    assert event["path"] == "/json?b=1&sig=REDACTED"


def test_no_query_no_copy() -> None:
    span = _ended_server_span(
        {"http.method": "GET", "http.target": "/json"}, lambda s: put_query_if_missing(s, "/json")
    )
    assert "peekapi.query" not in (span.attributes or {})


def test_the_route_replaces_an_older_instrumentations_handler_name() -> None:
    old = {"http.method": "GET", "http.target": "/items/7", "http.route": "item"}
    span = _ended_server_span(old, lambda s: put_route_if_other(s, "/items/{item_id}"))
    assert event_of(record_of_span(span), MappingRules())["path"] == "/items/{item_id}"
    # No route matched (a 404): the raw path, not the handler's name.
    span = _ended_server_span({**old, "http.route": "_handle"}, lambda s: put_route_if_other(s, ""))
    assert event_of(record_of_span(span), MappingRules())["path"] == "/items/7"
