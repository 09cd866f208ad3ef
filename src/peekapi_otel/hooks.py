"""What the HTTP instrumentations leave out: the consumer and the body sizes.

The OpenTelemetry HTTP instrumentations record no body sizes on spans and see the
credentials only through opt-in header capture (OTEL-FACTS Q1, Q3). The code here reads
the raw request once, hashes the consumer credential and counts bytes; it sets only
``peekapi.*`` attributes (and ``http.route`` where the instrumentation leaves out the
route template), in one write per request and one per response.

* ASGI (FastAPI, Starlette, Quart or any app behind ``OpenTelemetryMiddleware``):
  nothing to pass. Every ``OpenTelemetryMiddleware`` created after a PeekAPI processor
  wraps its app in a small counting layer.
* WSGI, Flask, Django, Falcon, Tornado: request/response hooks. Under
  ``opentelemetry-instrument`` the PeekAPI distro passes them itself; in code::

      FlaskInstrumentor().instrument_app(app, **hooks.instrumentor_kwargs("flask"))
      OpenTelemetryMiddleware(wsgi_app, **hooks.instrumentor_kwargs("wsgi"))
      OpenTelemetryMiddleware(bottle_app, **hooks.instrumentor_kwargs("bottle"))

* Litestar: ``OpenTelemetryConfig(**hooks.instrumentor_kwargs("litestar"))`` (under
  ``opentelemetry-instrument`` a plain ``OpenTelemetryConfig()`` does as well).
* Falcon ASGI: :func:`instrument_falcon_asgi`, with or without ``opentelemetry-instrument``.
* Pyramid, aiohttp: :func:`include_pyramid`, :func:`instrument_aiohttp_server` in code;
  under ``opentelemetry-instrument`` the distro adds them itself.

  A streamed response is counted as the server writes it, and a request body without
  Content-Length as the app reads it (README, "Streamed and chunked bodies on WSGI").

Pass your own hooks as keyword arguments to ``instrumentor_kwargs`` and both run (yours
second).
"""

from __future__ import annotations

from typing import Any

from peekapi_otel.otel._falcon import instrument_falcon_asgi
from peekapi_otel.otel._hooks import instrumentor_kwargs
from peekapi_otel.otel._pyramid import includeme as include_pyramid

__all__ = [
    "include_pyramid",
    "instrument_aiohttp_server",
    "instrument_falcon_asgi",
    "instrumentor_kwargs",
]


def instrument_aiohttp_server(**instrument_kwargs: Any) -> None:
    """``AioHttpServerInstrumentor().instrument()`` plus the PeekAPI middleware on every
    ``aiohttp.web.Application`` created afterwards."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    from peekapi_otel.otel._aiohttp import install_middleware_on_every_app

    AioHttpServerInstrumentor().instrument(**instrument_kwargs)
    install_middleware_on_every_app()
