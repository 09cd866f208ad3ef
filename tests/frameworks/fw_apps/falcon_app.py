"""The same resources as a WSGI (``falcon.App``) and an ASGI (``falcon.asgi.App``) app.

``build_wsgi`` must run after ``FalconInstrumentor().instrument()``: the instrumentation
replaces ``falcon.App``.
"""

from __future__ import annotations

import os

# Falcon learns extra HTTP methods from the environment when it is first imported.
os.environ.setdefault("FALCON_CUSTOM_HTTP_METHODS", "PURGE")

from collections.abc import AsyncIterator, Iterator
from typing import Any

import falcon
import falcon.asgi
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS


class JsonResource:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = JSON_BODY
        resp.set_cookie("sid", SET_COOKIE_SECRET)

    on_head = on_get


class ItemsResource:
    def on_post(self, req: Any, resp: Any) -> None:
        resp.media = {"created": req.get_media()}
        resp.status = falcon.HTTP_201


class ItemResource:
    def on_get(self, req: Any, resp: Any, item_id: int) -> None:
        resp.media = {"item_id": item_id}


class BoomResource:
    def on_get(self, req: Any, resp: Any) -> None:
        raise RuntimeError("boom from the handler")


class PurgeResource:
    def on_purge(self, req: Any, resp: Any) -> None:
        resp.media = {"purged": True}


class StreamResource:
    def on_get(self, req: Any, resp: Any) -> None:
        def chunks() -> Iterator[bytes]:
            yield from STREAM_CHUNKS

        resp.content_type = "text/plain"
        resp.stream = chunks()


class AsyncJsonResource:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = JSON_BODY
        resp.set_cookie("sid", SET_COOKIE_SECRET)

    on_head = on_get


class AsyncItemsResource:
    async def on_post(self, req: Any, resp: Any) -> None:
        resp.media = {"created": await req.get_media()}
        resp.status = falcon.HTTP_201


class AsyncItemResource:
    async def on_get(self, req: Any, resp: Any, item_id: int) -> None:
        resp.media = {"item_id": item_id}


class AsyncBoomResource:
    async def on_get(self, req: Any, resp: Any) -> None:
        raise RuntimeError("boom from the handler")


class AsyncPurgeResource:
    async def on_purge(self, req: Any, resp: Any) -> None:
        resp.media = {"purged": True}


class AsyncStreamResource:
    async def on_get(self, req: Any, resp: Any) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in STREAM_CHUNKS:
                yield chunk

        resp.content_type = "text/plain"
        resp.stream = chunks()


def _routes(app: Any, resources: tuple[Any, ...]) -> Any:
    json_, items, item, boom, purge, stream = resources
    app.add_route("/json", json_)
    app.add_route("/items", items)
    app.add_route("/items/{item_id:int}", item)
    app.add_route("/boom", boom)
    app.add_route("/purge", purge)
    app.add_route("/stream", stream)
    return app


def build_wsgi() -> Any:
    resources = (
        JsonResource(),
        ItemsResource(),
        ItemResource(),
        BoomResource(),
        PurgeResource(),
        StreamResource(),
    )
    return _routes(falcon.App(), resources)


def build_asgi() -> Any:
    resources = (
        AsyncJsonResource(),
        AsyncItemsResource(),
        AsyncItemResource(),
        AsyncBoomResource(),
        AsyncPurgeResource(),
        AsyncStreamResource(),
    )
    return _routes(falcon.asgi.App(), resources)
