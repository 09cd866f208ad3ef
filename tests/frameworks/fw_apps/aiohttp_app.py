"""``make_app()`` builds a new ``web.Application`` (after instrumenting)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS


async def json_endpoint(request: web.Request) -> web.Response:
    response = web.json_response(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


async def create(request: web.Request) -> web.Response:
    return web.json_response({"created": await request.json()}, status=201)


async def item(request: web.Request) -> web.Response:
    return web.json_response({"item_id": int(request.match_info["item_id"])})


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("boom from the handler")


async def purge(request: web.Request) -> web.Response:
    return web.json_response({"purged": True})


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    for chunk in STREAM_CHUNKS:
        await response.write(chunk)
    await response.write_eof()
    return response


def make_app() -> Any:
    app = web.Application()
    app.router.add_get("/json", json_endpoint)  # and HEAD
    app.router.add_post("/items", create)
    app.router.add_get(r"/items/{item_id:\d+}", item)
    app.router.add_get("/boom", boom)
    app.router.add_route("PURGE", "/purge", purge)
    app.router.add_get("/stream", stream)
    return app
