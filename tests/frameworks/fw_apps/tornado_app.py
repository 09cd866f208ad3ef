"""``make_app()`` builds a ``tornado.web.Application``."""

from __future__ import annotations

from typing import Any

import tornado.web
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS, dumps


class JsonHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_cookie("sid", SET_COOKIE_SECRET)
        self.write(dumps(JSON_BODY))

    head = get


class ItemsHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        import json

        self.set_status(201)
        self.set_header("Content-Type", "application/json")
        self.write(dumps({"created": json.loads(self.request.body)}))


class ItemHandler(tornado.web.RequestHandler):
    def get(self, item_id: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(dumps({"item_id": int(item_id)}))


class BoomHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError("boom from the handler")


class PurgeHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = (*tornado.web.RequestHandler.SUPPORTED_METHODS, "PURGE")

    def purge(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(dumps({"purged": True}))


class StreamHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        for chunk in STREAM_CHUNKS:
            self.write(chunk)
            await self.flush()


def make_app() -> Any:
    return tornado.web.Application(
        [
            (r"/json", JsonHandler),
            (r"/items", ItemsHandler),
            (r"/items/([0-9]+)", ItemHandler),
            (r"/boom", BoomHandler),
            (r"/purge", PurgeHandler),
            (r"/stream", StreamHandler),
        ]
    )
