"""A minimal Bottle app behind the OpenTelemetry WSGI middleware with the PeekAPI hooks
(the one line); run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument gunicorn -w 2 -b 127.0.0.1:8000 app:app``.
See README.md.
"""

from __future__ import annotations

import json
import os
from typing import Any

import bottle
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

from peekapi_otel.hooks import instrumentor_kwargs

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    import peekapi_otel

    peekapi_otel.configure()

bottle_app = bottle.Bottle()
ITEMS: dict[int, Any] = {1: {"name": "hammer", "price": 9.5}}


@bottle_app.get("/items/<item_id:int>")
def read_item(item_id: int) -> Any:
    if item_id not in ITEMS:
        bottle.abort(404, f"no item {item_id}")
    return ITEMS[item_id]


@bottle_app.post("/items")
def create_item() -> Any:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = json.loads(bottle.request.body.read())
    bottle.response.status = 201
    return {"id": item_id}


@bottle_app.get("/health")
def health() -> Any:
    return {"status": "ok"}


# The one line: Bottle has no OpenTelemetry instrumentation of its own.
app = OpenTelemetryMiddleware(bottle_app, **instrumentor_kwargs("bottle"))

if __name__ == "__main__":
    bottle.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
