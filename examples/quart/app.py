"""A minimal Quart app behind the OpenTelemetry ASGI middleware (the one line); run it
with ``PEEKAPI_API_KEY=... opentelemetry-instrument uvicorn app:app``. See README.md.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from quart import Quart, abort, jsonify, request

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    import peekapi_otel

    peekapi_otel.configure()

app = Quart(__name__)
ITEMS: dict[int, Any] = {1: {"name": "hammer", "price": 9.5}}


@app.get("/items/<int:item_id>")
async def read_item(item_id: int) -> Any:
    if item_id not in ITEMS:
        abort(404)
    return jsonify(ITEMS[item_id])


@app.post("/items")
async def create_item() -> Any:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = await request.get_json(force=True)
    return jsonify({"id": item_id}), 201


@app.get("/health")
async def health() -> Any:
    return jsonify({"status": "ok"})


# The one line: Quart has no OpenTelemetry instrumentation of its own.
app.asgi_app = OpenTelemetryMiddleware(app.asgi_app)  # type: ignore[method-assign]
