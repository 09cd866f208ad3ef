"""A minimal aiohttp server; no PeekAPI code at all. Run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument python app.py`` (``PORT``, default 8000).
See README.md.
"""

from __future__ import annotations

import os

from aiohttp import web

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    import peekapi_otel
    from peekapi_otel.hooks import instrument_aiohttp_server

    peekapi_otel.configure()
    instrument_aiohttp_server()

ITEMS: dict[int, object] = {1: {"name": "hammer", "price": 9.5}}


async def read_item(request: web.Request) -> web.Response:
    item_id = int(request.match_info["item_id"])
    if item_id not in ITEMS:
        raise web.HTTPNotFound(text=f"no item {item_id}")
    return web.json_response(ITEMS[item_id])


async def create_item(request: web.Request) -> web.Response:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = await request.json()
    return web.json_response({"id": item_id}, status=201)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get(r"/items/{item_id:\d+}", read_item)
    app.router.add_post("/items", create_item)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
