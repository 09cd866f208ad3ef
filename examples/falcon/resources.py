"""The example's resources, for the WSGI and the ASGI app."""

from __future__ import annotations

from typing import Any

import falcon

ITEMS: dict[int, Any] = {1: {"name": "hammer", "price": 9.5}}


def _read(item_id: int) -> Any:
    if item_id not in ITEMS:
        raise falcon.HTTPNotFound(description=f"no item {item_id}")
    return ITEMS[item_id]


def _create(body: Any) -> int:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = body
    return item_id


class Item:
    def on_get(self, req: Any, resp: Any, item_id: int) -> None:
        resp.media = _read(item_id)


class Items:
    def on_post(self, req: Any, resp: Any) -> None:
        resp.media = {"id": _create(req.get_media())}
        resp.status = falcon.HTTP_201


class Health:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"status": "ok"}


class AsyncItem:
    async def on_get(self, req: Any, resp: Any, item_id: int) -> None:
        resp.media = _read(item_id)


class AsyncItems:
    async def on_post(self, req: Any, resp: Any) -> None:
        resp.media = {"id": _create(await req.get_media())}
        resp.status = falcon.HTTP_201


class AsyncHealth:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"status": "ok"}


def add_routes(app: Any, *, asynchronous: bool) -> Any:
    item, items, health = (
        (AsyncItem(), AsyncItems(), AsyncHealth()) if asynchronous else (Item(), Items(), Health())
    )
    app.add_route("/items/{item_id:int}", item)
    app.add_route("/items", items)
    app.add_route("/health", health)
    return app
