from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bottle
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS, dumps

app = bottle.Bottle(catchall=True)


def _json(value: Any, status: int = 200) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(dumps(value), status, {"Content-Type": "application/json"})


@app.route("/json", method=["GET", "HEAD"])
def json_endpoint() -> bottle.HTTPResponse:
    response = _json(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


@app.post("/items")
def create() -> bottle.HTTPResponse:
    return _json({"created": bottle.request.json}, 201)


@app.get("/items/<item_id:int>")
def item(item_id: int) -> bottle.HTTPResponse:
    return _json({"item_id": item_id})


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("boom from the handler")


@app.route("/purge", method="PURGE")
def purge() -> bottle.HTTPResponse:
    return _json({"purged": True})


@app.get("/stream")
def stream() -> Iterator[bytes]:
    bottle.response.content_type = "text/plain"
    yield from STREAM_CHUNKS
