"""A minimal Litestar app with Litestar's own OpenTelemetry plugin (the one line PeekAPI
needs); run it with ``PEEKAPI_API_KEY=... opentelemetry-instrument uvicorn app:app``.
See README.md.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

# The one line: Litestar's plugin (below). Under opentelemetry-instrument the PeekAPI
# distro makes its default span details report the route template.
otel_config = OpenTelemetryConfig()

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # Without opentelemetry-instrument: configure, and pass PeekAPI's span details.
    import peekapi_otel
    from peekapi_otel.hooks import instrumentor_kwargs

    peekapi_otel.configure()
    otel_config = OpenTelemetryConfig(**instrumentor_kwargs("litestar"))

ITEMS: dict[int, dict[str, Any]] = {1: {"name": "hammer", "price": 9.5}}


@get("/items/{item_id:int}")
async def read_item(item_id: int) -> dict[str, Any]:
    if item_id not in ITEMS:
        raise NotFoundException(f"no item {item_id}")
    return ITEMS[item_id]


@post("/items")
async def create_item(request: Request[Any, Any, Any]) -> dict[str, int]:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = await request.json()
    return {"id": item_id}


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(
    route_handlers=[read_item, create_item, health],
    plugins=[OpenTelemetryPlugin(otel_config)],
)
