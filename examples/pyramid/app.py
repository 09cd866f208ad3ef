"""A minimal Pyramid app; no PeekAPI code at all. Run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument gunicorn -w 2 -b 127.0.0.1:8000 app:app``.
See README.md.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound

ITEMS: dict[int, Any] = {1: {"name": "hammer", "price": 9.5}}


def read_item(request: Any) -> Any:
    item_id = int(request.matchdict["item_id"])
    if item_id not in ITEMS:
        raise HTTPNotFound(f"no item {item_id}")
    return ITEMS[item_id]


def create_item(request: Any) -> Any:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = request.json_body
    request.response.status = 201
    return {"id": item_id}


def health(request: Any) -> Any:
    return {"status": "ok"}


def make_app() -> Any:
    if os.environ.get("PEEKAPI_PROGRAMMATIC"):
        from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

        import peekapi_otel

        peekapi_otel.configure()
        PyramidInstrumentor().instrument()
    with Configurator() as config:
        if os.environ.get("PEEKAPI_PROGRAMMATIC"):
            from peekapi_otel.hooks import include_pyramid

            config.include(include_pyramid)
        config.add_route("item", r"/items/{item_id:\d+}", request_method="GET")
        config.add_route("items", "/items", request_method="POST")
        config.add_route("health", "/health")
        config.add_view(read_item, route_name="item", renderer="json")
        config.add_view(create_item, route_name="items", renderer="json")
        config.add_view(health, route_name="health", renderer="json")
        return config.make_wsgi_app()


app = make_app()
