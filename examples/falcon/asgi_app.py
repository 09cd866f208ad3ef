"""The Falcon ASGI app (``falcon.asgi.App``), which the Falcon instrumentation does not
patch: one line puts it behind the OpenTelemetry ASGI middleware. Run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument uvicorn asgi_app:app``.
"""

from __future__ import annotations

import os

import falcon.asgi
from resources import add_routes

from peekapi_otel.hooks import instrument_falcon_asgi

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    import peekapi_otel

    peekapi_otel.configure()

# The one line: the OpenTelemetry ASGI middleware plus the route template.
app = instrument_falcon_asgi(add_routes(falcon.asgi.App(), asynchronous=True))
