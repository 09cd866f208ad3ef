"""Apps, in-process request drivers and variant builders for the overhead benchmark.

One process builds exactly one (framework, variant): the semantic-convention mode is
per process, the instrumentors are singletons and Django's instrumentor is global, so
process isolation is what keeps the variants honest. The parent interleaves rounds across
the variant processes (see ``run.py``).

Variants:

* ``bare``           the app alone;
* ``otel``           OpenTelemetry instrumentation, SDK ``TracerProvider`` with no processor;
* ``otel_peek``      as the zero-code path (``distro.py``) configures it: the distro's
                     ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` default,
                     ``peekapi_otel.otel._configure.attach(provider)`` (processor + sampler wrap),
                     ``peekapi_otel.hooks.instrumentor_kwargs(framework)`` on the instrumentor;
* ``peekapi``        the ``peekapi`` 0.1.0 middleware with its defaults;
* ``otel_nosr`` / ``otel_peek_nosr``  (ASGI only) as above with
                     ``exclude_spans=["send", "receive"]``;
* ``otel_proc`` / ``otel_hooks``  (``run.py --decompose``) ``otel_peek`` split in two:
                     processor + sampler wrap without hooks, and hooks without processor.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import Callable
from typing import Any

FRAMEWORKS = ("raw_asgi", "fastapi", "raw_wsgi", "flask", "django")
ASGI = ("raw_asgi", "fastapi")
BASE_VARIANTS = ("bare", "otel", "otel_peek", "peekapi")
NOSR_VARIANTS = ("otel_nosr", "otel_peek_nosr")
DECOMPOSE_VARIANTS = ("otel_proc", "otel_hooks")
API_KEY = "bench-project-key"
CONSUMER_KEY = "consumer-key-123456"
BODY = b'{"id":42,"q":"1"}'
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"


def variants_for(framework: str, decompose: bool = False) -> tuple[str, ...]:
    extra = DECOMPOSE_VARIANTS if decompose else ()
    return BASE_VARIANTS + (NOSR_VARIANTS if framework in ASGI else ()) + extra


def child_env(variant: str) -> dict[str, str]:
    """A clean environment: no user OTEL_*/PEEKAPI_* settings leak into the numbers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PEEKAPI_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    if variant.startswith("otel_peek"):
        # What PeekApiDistro._defaults() merges in (cookies redacted at capture time).
        from peekapi_otel.otel._configure import SANITIZED

        env[SANITIZE] = ",".join(SANITIZED)
    return env


# --- in-process drivers -----------------------------------------------------------

_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "query_string": b"q=1",
    "root_path": "",
    "headers": [
        (b"host", b"bench.local:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"x-api-key", CONSUMER_KEY.encode()),
    ],
    "client": ("127.0.0.1", 50123),
    "server": ("127.0.0.1", 8000),
}
_REQUEST = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT = {"type": "http.disconnect"}

_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/items/42",
    "QUERY_STRING": "q=1",
    "RAW_URI": "/items/42?q=1",
    "SERVER_NAME": "bench.local",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50123",
    "HTTP_HOST": "bench.local:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_X_API_KEY": CONSUMER_KEY,
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


class AsgiDriver:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.status = 0

    async def _run(self, n: int) -> None:
        app = self.app
        for _ in range(n):
            scope = _SCOPE.copy()
            received = [False]

            # Bound per request through the default: each request gets its own flag.
            async def receive(received: list[bool] = received) -> dict[str, Any]:
                if received[0]:
                    return _DISCONNECT
                received[0] = True
                return _REQUEST

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    self.status = message["status"]

            await app(scope, receive, send)

    def run(self, n: int) -> None:
        self.loop.run_until_complete(self._run(n))


class WsgiDriver:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.status = ""

    def _start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        return None

    def run(self, n: int) -> None:
        app, start_response = self.app, self._start_response
        for _ in range(n):
            environ = _ENVIRON.copy()
            environ["wsgi.input"] = io.BytesIO(b"")
            result = app(environ, start_response)
            try:
                for _chunk in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    def ok(self) -> bool:
        return str(self.status).startswith("200")


# --- apps ---------------------------------------------------------------------------


async def raw_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()  # read the (empty) body, as an app handling POSTs would
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def raw_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


def fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q}

    return app


def flask_app() -> Any:
    from flask import Flask, jsonify

    app = Flask("bench")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        from flask import request

        return jsonify(id=item_id, q=request.args.get("q"))

    return app


def _django_view(request: Any, item_id: int) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"id": item_id, "q": request.GET.get("q")})


urlpatterns: list[Any] = []


def django_app(peekapi_config: dict[str, Any] | None) -> Callable[[], Any]:
    """Configures Django settings; returns a factory for the WSGI handler (call it
    after the instrumentor has added its middleware)."""
    import django
    from django.conf import settings
    from django.urls import path

    middleware: list[str] = []
    extra: dict[str, Any] = {}
    if peekapi_config is not None:
        middleware.append("peekapi.middleware.django.PeekApiMiddleware")
        extra["PEEKAPI"] = peekapi_config
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=middleware,
        INSTALLED_APPS=[],
        USE_TZ=True,
        **extra,
    )
    django.setup()
    urlpatterns[:] = [path("items/<int:item_id>", _django_view)]

    def handler() -> Any:
        from django.core.handlers.wsgi import WSGIHandler

        return WSGIHandler()

    return handler


# --- variants -------------------------------------------------------------------------


class Built:
    """A ready-to-drive variant: ``driver.run(n)`` then ``drain()``."""

    def __init__(self, driver: Any, drain: Callable[[], None], info: dict[str, Any]) -> None:
        self.driver = driver
        self.drain = drain
        self.info = info


def peekapi_drain(client: Any) -> Callable[[], None]:
    """Block until everything ``client.track()``-ed was acknowledged by the ingest.

    ``PeekApiClient.flush()`` sends one batch and returns nothing when the background
    thread has a batch in flight, so loop on its (private) buffer and in-flight flag.
    """

    def drain() -> None:
        while True:
            with client._lock:
                idle = not client._buffer and not client._in_flight
            if idle:
                return
            client.flush()
            with client._lock:
                busy = client._in_flight
            if busy:
                time.sleep(0.0005)

    return drain


def build(framework: str, variant: str, ingest_url: str, storage: str) -> Built:
    info: dict[str, Any] = {"framework": framework, "variant": variant, "pid": os.getpid()}
    provider = None
    processor = None
    client = None
    kwargs: dict[str, Any] = {}

    if variant.startswith("otel"):
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider()
        if variant == "otel_proc":  # decomposition: processor + sampler wrap, no hooks
            from peekapi_otel.otel._configure import attach

            processor = attach(provider, api_key=API_KEY, endpoint=ingest_url, storage_path=storage)
        elif variant == "otel_hooks":  # decomposition: our hooks only, no processor
            from peekapi_otel.hooks import instrumentor_kwargs

            hook_flavour = {"raw_asgi": "asgi", "raw_wsgi": "wsgi"}.get(framework, framework)
            kwargs.update(instrumentor_kwargs(hook_flavour))
        elif variant.startswith("otel_peek"):
            from peekapi_otel.hooks import instrumentor_kwargs
            from peekapi_otel.otel._configure import attach

            processor = attach(provider, api_key=API_KEY, endpoint=ingest_url, storage_path=storage)
            hook_flavour = {"raw_asgi": "asgi", "raw_wsgi": "wsgi"}.get(framework, framework)
            kwargs.update(instrumentor_kwargs(hook_flavour))
            info["sampler"] = provider.sampler.get_description()
            info["sanitize_env"] = os.environ.get(SANITIZE)
        if variant.endswith("_nosr"):
            kwargs["exclude_spans"] = ["send", "receive"]
        kwargs["tracer_provider"] = provider
    elif variant == "peekapi" and framework != "django":
        from peekapi import PeekApiClient

        client = PeekApiClient(
            {"api_key": API_KEY, "endpoint": ingest_url, "storage_path": storage + "/peekapi.jsonl"}
        )

    app: Any
    if framework == "raw_asgi":
        app = raw_asgi_app
        if provider is not None:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            app = OpenTelemetryMiddleware(app, **kwargs)
        elif client is not None:
            from peekapi.middleware.asgi import PeekApiASGI

            app = PeekApiASGI(app, client=client)
        driver: Any = AsgiDriver(app)
    elif framework == "fastapi":
        app = fastapi_app()
        if provider is not None:
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

            FastAPIInstrumentor.instrument_app(app, **kwargs)
        elif client is not None:
            from peekapi.middleware.asgi import PeekApiASGI

            app.add_middleware(PeekApiASGI, client=client)
        driver = AsgiDriver(app)
    elif framework == "raw_wsgi":
        app = raw_wsgi_app
        if provider is not None:
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiMw

            app = WsgiMw(app, **kwargs)
        elif client is not None:
            from peekapi.middleware.wsgi import PeekApiWSGI

            app = PeekApiWSGI(app, client=client)
        driver = WsgiDriver(app)
    elif framework == "flask":
        app = flask_app()
        if provider is not None:
            from opentelemetry.instrumentation.flask import FlaskInstrumentor

            FlaskInstrumentor.instrument_app(app, **kwargs)
        elif client is not None:
            from peekapi.middleware.wsgi import PeekApiWSGI

            app.wsgi_app = PeekApiWSGI(app.wsgi_app, client=client)
        driver = WsgiDriver(app)
    elif framework == "django":
        peek_cfg = None
        if variant == "peekapi":
            # The Django middleware builds its own client from settings.PEEKAPI.
            peek_cfg = {
                "api_key": API_KEY,
                "endpoint": ingest_url,
                "storage_path": storage + "/peekapi-django.jsonl",
            }
        factory = django_app(peek_cfg)
        if provider is not None:
            from opentelemetry.instrumentation.django import DjangoInstrumentor

            DjangoInstrumentor().instrument(**kwargs)
        app = factory()
        driver = WsgiDriver(app)
        if variant == "peekapi":
            driver.run(1)  # the middleware creates its client on first instantiation
            from peekapi.middleware.django import PeekApiMiddleware

            client = PeekApiMiddleware._client
    else:
        raise ValueError(framework)

    if processor is not None:
        proc = processor

        def drain() -> None:
            proc.force_flush(30_000)

    elif client is not None:
        drain = peekapi_drain(client)
    else:

        def drain() -> None:
            return None

    info["processor"] = processor is not None
    info["peekapi_client"] = client is not None
    built = Built(driver, drain, info)
    built.provider = provider  # type: ignore[attr-defined]
    built.processor = processor  # type: ignore[attr-defined]
    built.client = client  # type: ignore[attr-defined]
    return built
