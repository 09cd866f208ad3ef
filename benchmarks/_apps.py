"""Apps, in-process request drivers and the ways in for the overhead benchmark.

One process builds exactly one (framework, variant): the semantic-convention mode is
per process, the instrumentors are singletons and Django's instrumentor is global, so
process isolation is what keeps the variants honest. The parent interleaves rounds across
the variant processes (see ``run.py``).

Each PeekAPI way in is wired exactly as the README tells a user to wire it, through its
public entry only:

* ``bare``       the app alone (a);
* ``peekapi``    the ``peekapi`` 0.1.0 middleware with its defaults (d);
* ``peekapi_otel`` the same middleware inside the app of ``otel``: what the ``peekapi``
                 middleware adds to an app that already runs OpenTelemetry (d2; the
                 like-for-like table of ``run.py``);
* ``otel``       OpenTelemetry alone in code: the user's ``TracerProvider`` (default
                 sampler) set as the global one, the app instrumented without hooks (b of
                 ``configure`` and ``provider``);
* ``configure``  ``peekapi_otel.configure(...)``, then the app instrumented as the README's
                 "Programmatic" section says: no hooks for ASGI apps,
                 ``instrumentor_kwargs(framework)`` for Flask, Django and raw WSGI;
* ``provider``   ``provider.add_span_processor(PeekApiSpanProcessor(...))`` on the user's
                 own ``TracerProvider``, whose sampler is left alone; instrumented as for
                 ``configure``;
* ``otel_zero``  OpenTelemetry alone under ``opentelemetry-instrument``:
                 ``auto_instrumentation.initialize()`` with peekapi-otel's entry points
                 hidden, the SDK's own configurator (what ``opentelemetry-distro``
                 registers) and ``OTEL_*_EXPORTER=none``; ASGI apps leave out the
                 per-message spans as the PeekAPI distro does without an exporter, so
                 that ``zero - otel_zero`` compares the same spans (b of ``zero``);
* ``zero``       ``auto_instrumentation.initialize()`` with the PeekAPI distro and
                 configurator (``OTEL_PYTHON_DISTRO=peekapi``,
                 ``OTEL_PYTHON_CONFIGURATOR=peekapi``) and the ``PEEKAPI_*`` variables, as
                 ``opentelemetry-instrument`` loads them. FastAPI, Flask and Django are
                 instrumented by it; raw apps are wrapped by hand, as a user would:
                 ``OpenTelemetryMiddleware(app)`` for ASGI, with
                 ``instrumentor_kwargs("wsgi")`` for WSGI;
* ``otel_zero_all`` (ASGI, ``run.py --cut``) ``otel_zero`` with OpenTelemetry's default
                 spans: what the distro's cut of the per-message spans saves.
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
#: way in -> (its OpenTelemetry-alone baseline b, its variant c)
WAYS = {
    "zero code": ("otel_zero", "zero"),
    "configure()": ("otel", "configure"),
    "own provider": ("otel", "provider"),
}
BASE_VARIANTS = (
    "bare",
    "peekapi",
    "peekapi_otel",
    "otel",
    "configure",
    "provider",
    "otel_zero",
    "zero",
)
CUT_VARIANTS = ("otel_zero_all",)
#: Variants whose events reach the ingest.
SENDERS = ("peekapi", "peekapi_otel", "configure", "provider", "zero")
#: Variants that run the ``peekapi`` middleware.
PEEKAPI_MIDDLEWARE = ("peekapi", "peekapi_otel")
ZERO_CODE = ("otel_zero", "otel_zero_all", "zero")
API_KEY = "bench-project-key"
CONSUMER_KEY = "consumer-key-123456"
BODY = b'{"id":42,"q":"1"}'
#: The instrumentor entry points ``opentelemetry-instrument`` would load for each app.
INSTRUMENTORS = {"fastapi": ("fastapi",), "flask": ("flask",), "django": ("django",)}
_ALL_INSTRUMENTORS = ("fastapi", "starlette", "flask", "django")


def variants_for(framework: str, cut: bool = False) -> tuple[str, ...]:
    return BASE_VARIANTS + (CUT_VARIANTS if cut and framework in ASGI else ())


def child_env(framework: str, variant: str) -> dict[str, str]:
    """A clean environment (no user OTEL_*/PEEKAPI_* settings leak into the numbers),
    plus what ``opentelemetry-instrument`` would see for the zero-code variants."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PEEKAPI_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    if variant in ZERO_CODE:
        # Only the app's own framework is installed in a user's environment.
        mine = INSTRUMENTORS.get(framework, ())
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(
            i for i in _ALL_INSTRUMENTORS if i not in mine
        )
    if variant == "zero":
        env["OTEL_PYTHON_DISTRO"] = "peekapi"
        env["OTEL_PYTHON_CONFIGURATOR"] = "peekapi"
    elif variant in ZERO_CODE:
        # What the PeekAPI distro defaults to, so that b exports nothing either.
        for signal in ("TRACES", "METRICS", "LOGS"):
            env[f"OTEL_{signal}_EXPORTER"] = "none"
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


# --- wiring, app by app ---------------------------------------------------------------

#: The frameworks whose instrumentation and peekapi middleware go on one app object
#: (Django's go on the process: its settings and its global instrumentor).
WIRED_BY_APP = ("raw_asgi", "fastapi", "raw_wsgi", "flask")
RAW = ("raw_asgi", "raw_wsgi")


def new_app(framework: str) -> Any:
    """A fresh app of ``framework`` (one of :data:`WIRED_BY_APP`)."""
    if framework == "raw_asgi":
        return raw_asgi_app
    if framework == "raw_wsgi":
        return raw_wsgi_app
    if framework == "fastapi":
        return fastapi_app()
    if framework == "flask":
        return flask_app()
    raise ValueError(framework)


def with_peekapi(framework: str, app: Any, client: Any) -> Any:
    """``app`` with the ``peekapi`` 0.1.0 middleware, as its README wires each framework."""
    if framework in ASGI:
        from peekapi.middleware.asgi import PeekApiASGI

        if framework == "fastapi":
            app.add_middleware(PeekApiASGI, client=client)
            return app
        return PeekApiASGI(app, client=client)
    from peekapi.middleware.wsgi import PeekApiWSGI

    if framework == "flask":
        app.wsgi_app = PeekApiWSGI(app.wsgi_app, client=client)
        return app
    return PeekApiWSGI(app, client=client)


def instrumented_app(framework: str, app: Any, **kwargs: Any) -> Any:
    """``app`` under OpenTelemetry's instrumentation for ``framework``, in code."""
    if framework == "raw_asgi":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(app, **kwargs)
    if framework == "raw_wsgi":
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiMw

        return WsgiMw(app, **kwargs)
    if framework == "fastapi":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, **kwargs)
        return app
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app, **kwargs)
    return app


def readme_hooks(framework: str) -> dict[str, Any]:
    """The hooks the README's "Programmatic" section passes to ``framework``'s
    instrumentation (none for ASGI apps)."""
    from peekapi_otel.hooks import instrumentor_kwargs

    return instrumentor_kwargs({"raw_asgi": "asgi", "raw_wsgi": "wsgi"}.get(framework, framework))


def driver_for(framework: str, app: Any) -> Any:
    return AsgiDriver(app) if framework in ASGI else WsgiDriver(app)


# --- variants -------------------------------------------------------------------------


class Built:
    """A ready-to-drive variant: ``driver.run(n)`` then ``drain()``."""

    def __init__(
        self,
        driver: Any,
        drain: Callable[[], None],
        info: dict[str, Any],
        processor: Any = None,
        client: Any = None,
    ) -> None:
        self.driver = driver
        self.drain = drain
        self.info = info
        self.processor = processor
        self.client = client


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


_SEND_RECEIVE = ["send", "receive"]


def _initialize_otel_alone() -> None:
    """``opentelemetry-instrument`` with OpenTelemetry alone: peekapi-otel's entry points
    hidden, the SDK's configurator in their place (``opentelemetry-distro``'s is an empty
    subclass of it)."""
    from opentelemetry.instrumentation.auto_instrumentation import _load, initialize
    from opentelemetry.util._importlib_metadata import EntryPoint

    original = _load.entry_points
    sdk = EntryPoint(
        name="sdk",
        value="opentelemetry.sdk._configuration:_OTelSDKConfigurator",
        group="opentelemetry_configurator",
    )

    def entry_points(**params: Any) -> list[Any]:
        found = [ep for ep in original(**params) if not ep.value.startswith("peekapi_otel")]
        return [sdk, *found] if params.get("group") == sdk.group else found

    _load.entry_points = entry_points
    try:
        initialize(swallow_exceptions=False)
    finally:
        _load.entry_points = original


def _zero_code(variant: str, framework: str, ingest_url: str, storage: str) -> None:
    from opentelemetry.instrumentation.auto_instrumentation import initialize

    if variant == "zero":
        os.environ.update(
            PEEKAPI_API_KEY=API_KEY, PEEKAPI_ENDPOINT=ingest_url, PEEKAPI_STORAGE_PATH=storage
        )
        initialize(swallow_exceptions=False)
        return
    _initialize_otel_alone()
    if framework == "fastapi" and variant == "otel_zero":
        # The PeekAPI distro's cut, given to OpenTelemetry's own instrumentor.
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor().uninstrument()
        FastAPIInstrumentor().instrument(exclude_spans=_SEND_RECEIVE)


def build(framework: str, variant: str, ingest_url: str, storage: str) -> Built:
    info: dict[str, Any] = {"framework": framework, "variant": variant, "pid": os.getpid()}
    processor: Any = None
    client: Any = None
    instrumented = variant != "bare" and variant != "peekapi"
    # Hooks for the WSGI frameworks, as the README's "Programmatic" section passes them;
    # ASGI apps take none, and under the distro FastAPI/Flask/Django get them from it.
    kwargs: dict[str, Any] = {}
    if variant in ("configure", "provider") or (variant == "zero" and framework == "raw_wsgi"):
        kwargs = readme_hooks(framework)
    if framework == "raw_asgi" and variant == "otel_zero":
        kwargs["exclude_spans"] = _SEND_RECEIVE
    django_factory = None
    if framework == "django":
        peek_cfg = None
        if variant in PEEKAPI_MIDDLEWARE:
            # The Django middleware builds its own client from settings.PEEKAPI.
            peek_cfg = {
                "api_key": API_KEY,
                "endpoint": ingest_url,
                "storage_path": storage + "/peekapi-django.jsonl",
            }
        # Settings first, as DJANGO_SETTINGS_MODULE is exported before
        # opentelemetry-instrument starts.
        django_factory = django_app(peek_cfg)

    if variant in ZERO_CODE:
        _zero_code(variant, framework, ingest_url, storage)
    elif variant in ("otel", "provider", "peekapi_otel"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider()
        if variant == "provider":
            from peekapi_otel import PeekApiSpanProcessor

            processor = PeekApiSpanProcessor(
                api_key=API_KEY, endpoint=ingest_url, storage_path=storage
            )
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
    elif variant == "configure":
        import peekapi_otel

        processor = peekapi_otel.configure(
            api_key=API_KEY, endpoint=ingest_url, storage_path=storage
        )
    if variant in PEEKAPI_MIDDLEWARE and framework != "django":
        from peekapi import PeekApiClient

        client = PeekApiClient(
            {"api_key": API_KEY, "endpoint": ingest_url, "storage_path": storage + "/peekapi.jsonl"}
        )

    app: Any
    by_hand = instrumented and variant not in ZERO_CODE
    if framework in WIRED_BY_APP:
        app = new_app(framework)
        if client is not None:
            app = with_peekapi(framework, app, client)
        # Raw apps are wrapped by hand under zero code too; the distro instruments the rest.
        if by_hand or (instrumented and framework in RAW):
            app = instrumented_app(framework, app, **kwargs)
        driver: Any = driver_for(framework, app)
    elif framework == "django":
        assert django_factory is not None
        if by_hand:
            from opentelemetry.instrumentation.django import DjangoInstrumentor

            DjangoInstrumentor().instrument(**kwargs)
        app = django_factory()
        driver = WsgiDriver(app)
        if variant in PEEKAPI_MIDDLEWARE:
            driver.run(1)  # the middleware creates its client on first instantiation
            from peekapi.middleware.django import PeekApiMiddleware

            client = PeekApiMiddleware._client
    else:
        raise ValueError(framework)

    if variant == "zero":
        processor = _global_processor()
    if instrumented:
        from opentelemetry import trace

        info["sampler"] = _sampler_description(trace.get_tracer_provider())
    drain: Callable[[], None]
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
    return Built(driver, drain, info, processor, client)


def _global_processor() -> Any:
    """The PeekAPI processor the distro attached to the global provider: it is only
    needed to wait for delivery (``force_flush`` of the provider flushes it)."""
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    if not hasattr(provider, "force_flush"):
        raise RuntimeError(f"the distro set no SDK TracerProvider: {provider!r}")
    return provider


def _sampler_description(provider: Any) -> str:
    sampler = getattr(provider, "sampler", None)
    return sampler.get_description() if sampler is not None else repr(provider)
