"""A minimal Falcon WSGI app; no PeekAPI code at all. Run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument gunicorn -w 2 -b 127.0.0.1:8000 app:app``.
The ASGI variant is ``asgi_app.py``. See README.md.
"""

from __future__ import annotations

import os

import falcon
from resources import add_routes

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # Programmatic: configure, then instrument before the app is built.
    from opentelemetry.instrumentation.falcon import FalconInstrumentor

    import peekapi_otel
    from peekapi_otel.hooks import instrumentor_kwargs

    peekapi_otel.configure()
    FalconInstrumentor().instrument(**instrumentor_kwargs("falcon"))

app = add_routes(falcon.App(), asynchronous=False)
