"""A minimal Tornado app; no PeekAPI code at all. Run it with
``PEEKAPI_API_KEY=... opentelemetry-instrument python app.py`` (``PORT``, default 8000).
See README.md.
"""

from __future__ import annotations

import asyncio
import json
import os

import tornado.web

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    from opentelemetry.instrumentation.tornado import TornadoInstrumentor

    import peekapi_otel
    from peekapi_otel.hooks import instrumentor_kwargs

    peekapi_otel.configure()
    TornadoInstrumentor().instrument(**instrumentor_kwargs("tornado"))

ITEMS: dict[int, object] = {1: {"name": "hammer", "price": 9.5}}


class ItemHandler(tornado.web.RequestHandler):
    def get(self, item_id: str) -> None:
        item = ITEMS.get(int(item_id))
        if item is None:
            # Written by the handler: a raised HTTPError's page is sent after the span
            # ended and would count as 0 bytes.
            self.set_status(404)
            self.write({"detail": f"no item {item_id}"})
            return
        self.write(item)


class ItemsHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        item_id = max(ITEMS, default=0) + 1
        ITEMS[item_id] = json.loads(self.request.body)
        self.set_status(201)
        self.write({"id": item_id})


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/items/([0-9]+)", ItemHandler),
            (r"/items", ItemsHandler),
            (r"/health", HealthHandler),
        ]
    )


async def main() -> None:
    make_app().listen(int(os.environ.get("PORT", "8000")), address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
