"""Drive one real app through its real OpenTelemetry instrumentation; write a JSON report.

Run in its own process (the semconv mode is read once per process and the Django
instrumentor is a process-wide singleton)::

    python _scenarios.py FRAMEWORK INGEST_URL REPORT_PATH SPOOL_DIR

FRAMEWORK is one of ``FRAMEWORKS``. The provider gets two PeekAPI processors sending to
the ingest (``metadata.proc`` tells them apart: ``plain`` with the query string off,
``query`` with it on), an in-memory exporter and a console exporter writing to a file.
The report holds, per scenario, what the client saw, the time window and the IDs of
the request's SERVER span, plus every span the other exporters got, as they got it.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fw_apps.common import API_KEY_SECRET, COOKIE_SECRET, TOKEN_SECRET
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

from peekapi_otel import PeekApiSpanProcessor, stats
from peekapi_otel.hooks import instrumentor_kwargs

FRAMEWORKS = (
    "fastapi",
    "starlette",
    "flask",
    "django_wsgi",
    "django_asgi",
    "django_wsgiref",
    "raw_asgi",
    "raw_wsgi",
    "litestar",
    "bottle",
    "falcon_wsgi",
    "falcon_asgi",
    "pyramid",
    "aiohttp",
    "tornado",
    "quart",
)
#: The instrumentation package of each framework whose reading of
#: ``OTEL_SEMCONV_STABILITY_OPT_IN`` is probed: the three that came to it after 0.60b0,
#: and Flask's, which shows the probe works.
OPT_IN_PROBED = {
    "pyramid": "opentelemetry.instrumentation.pyramid",
    "aiohttp": "opentelemetry.instrumentation.aiohttp_server",
    "tornado": "opentelemetry.instrumentation.tornado",
    "flask": "opentelemetry.instrumentation.flask",
}
PROJECT_KEY = "project-key-for-tests"
CREATE_BODY = b'{"name":"widget","qty":3}'


@dataclass
class Scenario:
    name: str
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


SCENARIOS = (
    Scenario(
        "json",
        "GET",
        "/json",
        {
            "X-API-Key": API_KEY_SECRET,
            "Authorization": TOKEN_SECRET,
            "Cookie": COOKIE_SECRET,
            "X-Tenant": "acme",
        },
    ),
    Scenario(
        "create",
        "POST",
        "/items",
        {"X-API-Key": API_KEY_SECRET, "Content-Type": "application/json"},
        CREATE_BODY,
    ),
    Scenario("missing", "GET", "/missing"),
    Scenario("boom", "GET", "/boom"),
    Scenario("head", "HEAD", "/json"),
    Scenario("purge", "PURGE", "/purge"),
    Scenario("stream", "GET", "/stream", {"Cookie": COOKIE_SECRET}),
    Scenario("query", "GET", "/json?zeta=1&alpha=two&mid=3"),
    Scenario("param", "GET", "/items/42", {"Authorization": TOKEN_SECRET}),
)

Send = Callable[[Scenario], tuple[int, bytes]]


def _asgi_sender(app: Any) -> Send:
    import httpx

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def one(s: Scenario) -> tuple[int, bytes]:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.request(s.method, s.target, headers=s.headers, content=s.body or None)
            return r.status_code, r.content

    return lambda s: asyncio.run(one(s))


def _testclient_sender(app: Any) -> Send:
    from starlette.testclient import TestClient

    client = TestClient(app, raise_server_exceptions=False)

    def send(s: Scenario) -> tuple[int, bytes]:
        r = client.request(s.method, s.target, headers=s.headers, content=s.body or None)
        return r.status_code, r.content

    return send


def _werkzeug_sender(app: Any) -> Send:
    from werkzeug.test import Client

    # No cookie jar: it would replace the Cookie header the scenario sends.
    client = Client(app, use_cookies=False)

    def send(s: Scenario) -> tuple[int, bytes]:
        r = client.open(s.target, method=s.method, headers=s.headers, data=s.body or None)
        return r.status_code, r.get_data()

    return send


def _django_client_sender() -> Send:
    from django.test import Client

    client = Client(raise_request_exception=False)

    def send(s: Scenario) -> tuple[int, bytes]:
        headers = {k: v for k, v in s.headers.items() if k.lower() != "content-type"}
        content_type = s.headers.get("Content-Type", "application/octet-stream")
        r = client.generic(
            s.method, s.target, data=s.body, content_type=content_type, headers=headers
        )
        body = b"".join(r.streaming_content) if r.streaming else r.content  # type: ignore[attr-defined]
        return r.status_code, body

    return send


def _http_sender(port: int) -> Send:
    def send(s: Scenario) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(s.method, s.target, body=s.body or None, headers=s.headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    return send


def _loop_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def _aiohttp_sender(app: Any) -> tuple[Send, Callable[[], None]]:
    """A real aiohttp server on a loop of its own."""
    from aiohttp import web

    loop, thread = _loop_thread()
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return _http_sender(port), stop


def _tornado_sender(app: Any) -> tuple[Send, Callable[[], None]]:
    """A real Tornado HTTP server on a loop of its own."""
    import socket

    from tornado.httpserver import HTTPServer

    loop, thread = _loop_thread()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    async def start() -> HTTPServer:
        server = HTTPServer(app)
        server.add_sockets([sock])
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def stop() -> None:
        loop.call_soon_threadsafe(server.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return _http_sender(port), stop


def _wsgiref_sender(app: Any) -> tuple[Send, Callable[[], None]]:
    """A real server that sets neither RAW_URI nor REQUEST_URI (like ``runserver``)."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]

    def send(s: Scenario) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(s.method, s.target, body=s.body or None, headers=s.headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return send, stop


def build(framework: str, provider: TracerProvider) -> tuple[Send, Callable[[], None]]:
    """The instrumented app behind a real client for ``framework``."""
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if framework == "fastapi":
        from fw_apps.fastapi_app import app as fastapi_app
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            fastapi_app, tracer_provider=provider, **instrumentor_kwargs("fastapi")
        )
        return _testclient_sender(fastapi_app), stop
    if framework == "starlette":
        from fw_apps.starlette_app import app as starlette_app
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(
            starlette_app, tracer_provider=provider, **instrumentor_kwargs("starlette")
        )
        return _testclient_sender(starlette_app), stop
    if framework == "flask":
        from fw_apps.flask_app import app as flask_app
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(
            flask_app, tracer_provider=provider, **instrumentor_kwargs("flask")
        )
        return _werkzeug_sender(flask_app), stop
    if framework.startswith("django"):
        import django
        from fw_apps.django_app import configure_settings
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        configure_settings()
        DjangoInstrumentor().instrument(tracer_provider=provider, **instrumentor_kwargs("django"))
        django.setup()
        if framework == "django_wsgi":
            return _django_client_sender(), stop
        if framework == "django_asgi":
            from django.core.asgi import get_asgi_application

            return _asgi_sender(get_asgi_application()), stop
        from django.core.wsgi import get_wsgi_application

        return _wsgiref_sender(get_wsgi_application())
    if framework == "raw_asgi":
        from fw_apps.raw_asgi_app import app as asgi_app
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as AsgiMiddleware

        wrapped = AsgiMiddleware(asgi_app, tracer_provider=provider, **instrumentor_kwargs("asgi"))
        return _asgi_sender(wrapped), stop
    if framework == "raw_wsgi":
        from fw_apps.raw_wsgi_app import app as wsgi_app
        from fw_apps.raw_wsgi_app import server_errors
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiMiddleware

        wrapped = WsgiMiddleware(wsgi_app, tracer_provider=provider, **instrumentor_kwargs("wsgi"))
        return _werkzeug_sender(server_errors(wrapped)), stop
    return _build_more(framework, provider)


def _build_more(framework: str, provider: TracerProvider) -> tuple[Send, Callable[[], None]]:
    """The frameworks beyond the first set; some instrumentations take their tracer from
    the global provider only (Pyramid), so it is set for all of them."""
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if framework == "litestar":
        from fw_apps.litestar_app import build as build_litestar

        # The plain plugin config: the route fix applies to Litestar's default extractor.
        from peekapi_otel.otel._litestar import install_default_route_fix

        install_default_route_fix()
        return _asgi_sender(build_litestar(tracer_provider=provider)), stop
    if framework == "bottle":
        from fw_apps.bottle_app import app as bottle_app
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiMiddleware

        wrapped = WsgiMiddleware(
            bottle_app, tracer_provider=provider, **instrumentor_kwargs("bottle")
        )
        # A real server: Bottle's 500 passes exc_info, which werkzeug's client re-raises.
        return _wsgiref_sender(wrapped)
    if framework == "falcon_wsgi":
        from fw_apps.falcon_app import build_wsgi
        from opentelemetry.instrumentation.falcon import FalconInstrumentor

        FalconInstrumentor().instrument(tracer_provider=provider, **instrumentor_kwargs("falcon"))
        return _werkzeug_sender(build_wsgi()), stop
    if framework == "falcon_asgi":
        from fw_apps.falcon_app import build_asgi

        from peekapi_otel.hooks import instrument_falcon_asgi

        return _asgi_sender(instrument_falcon_asgi(build_asgi(), tracer_provider=provider)), stop
    if framework == "pyramid":
        from fw_apps.raw_wsgi_app import server_errors
        from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

        from peekapi_otel.otel._pyramid import install_tween_on_every_app

        PyramidInstrumentor().instrument()
        install_tween_on_every_app()  # what the distro does after instrument()
        from fw_apps.pyramid_app import make_app as make_pyramid

        return _werkzeug_sender(server_errors(make_pyramid())), stop
    if framework == "aiohttp":
        from peekapi_otel.hooks import instrument_aiohttp_server

        instrument_aiohttp_server(tracer_provider=provider)
        from fw_apps.aiohttp_app import make_app as make_aiohttp

        return _aiohttp_sender(make_aiohttp())
    if framework == "tornado":
        from opentelemetry.instrumentation.tornado import TornadoInstrumentor

        TornadoInstrumentor().instrument(tracer_provider=provider, **instrumentor_kwargs("tornado"))
        from fw_apps.tornado_app import make_app as make_tornado

        return _tornado_sender(make_tornado())
    if framework == "quart":
        from fw_apps.quart_app import app as quart_app
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as AsgiMiddleware

        quart_app.asgi_app = AsgiMiddleware(quart_app.asgi_app, tracer_provider=provider)  # type: ignore[method-assign]
        return _asgi_sender(quart_app), stop
    raise SystemExit(f"unknown framework {framework!r}")


def _span_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.context
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "local_root": span.parent is None or span.parent.is_remote,
        "attributes": {
            k: v if isinstance(v, str | int | float | bool) else list(v)
            for k, v in (span.attributes or {}).items()
        },
        "status": span.status.status_code.name,
    }


def _wait_for_server_span(memory: InMemorySpanExporter, seen: int) -> list[ReadableSpan]:
    deadline = time.monotonic() + 5
    while True:
        spans = list(memory.get_finished_spans())[seen:]
        roots = [s for s in spans if s.kind is SpanKind.SERVER and s.parent is None]
        if roots or time.monotonic() > deadline:
            return roots
        time.sleep(0.01)


def reads_opt_in(framework: str) -> bool | None:
    """Whether the instrumentation of ``framework`` reads the semantic-convention opt-in
    (``None``: not probed). Those that do use OpenTelemetry's one helper module for it."""
    name = OPT_IN_PROBED.get(framework)
    if name is None:
        return None
    importlib.import_module(name)
    return any(
        getattr(value, "__module__", None) == "opentelemetry.instrumentation._semconv"
        for module_name, module in list(sys.modules.items())
        if module_name == name or module_name.startswith(name + ".")
        for value in vars(module).values()
    )


def tenant(headers: Mapping[str, str]) -> str | None:
    """The ``identify_consumer`` of the ``identify`` runs."""
    return f"tenant-{headers['x-tenant']}" if "x-tenant" in headers else None


def main() -> int:
    framework, ingest_url, report_path, spool = sys.argv[1:5]
    identify = sys.argv[5:6] == ["identify"]
    console_path = Path(report_path).with_suffix(".console.txt")
    provider = TracerProvider()
    common: dict[str, Any] = {"api_key": PROJECT_KEY, "endpoint": ingest_url, "flush_interval": 0.2}
    if identify:
        common["identify_consumer"] = tenant
    plain = PeekApiSpanProcessor(
        storage_path=spool + "/plain", metadata={"proc": "plain", "app": framework}, **common
    )
    query = PeekApiSpanProcessor(
        storage_path=spool + "/query",
        metadata={"proc": "query", "app": framework},
        collect_query_string=True,
        **common,
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(plain)
    provider.add_span_processor(query)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with open(console_path, "w", encoding="utf-8") as console_out:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=console_out)))
        send, stop = build(framework, provider)
        results: list[dict[str, Any]] = []
        try:
            for scenario in SCENARIOS:
                seen = len(memory.get_finished_spans())
                t0 = time.time_ns()
                status, body = send(scenario)
                roots = _wait_for_server_span(memory, seen)
                t1 = time.time_ns()
                results.append(
                    {
                        "name": scenario.name,
                        "method": scenario.method,
                        "target": scenario.target,
                        "request_body": len(scenario.body),
                        "status": status,
                        "body_len": len(body),
                        "t0_ns": t0,
                        "t1_ns": t1,
                        "server_spans": [_span_dict(s) for s in roots],
                    }
                )
        finally:
            stop()
        flushed = provider.force_flush(20_000)
        provider.shutdown()
    report = {
        "framework": framework,
        "reads_opt_in": reads_opt_in(framework),
        "flushed": flushed,
        "scenarios": results,
        "memory_spans": [_span_dict(s) for s in memory.get_finished_spans()],
        "stats": stats(),
    }
    Path(report_path).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
