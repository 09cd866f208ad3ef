from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS
from quart import Quart, Response, jsonify, request

app = Quart(__name__)


@app.route("/json", methods=["GET", "HEAD"])
async def json_endpoint() -> Any:
    response = jsonify(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


@app.post("/items")
async def create() -> Any:
    return jsonify({"created": await request.get_json()}), 201


@app.get("/items/<int:item_id>")
async def item(item_id: int) -> Any:
    return jsonify({"item_id": item_id})


@app.get("/boom")
async def boom() -> Any:
    raise RuntimeError("boom from the handler")


@app.route("/purge", methods=["PURGE"])
async def purge() -> Any:
    return jsonify({"purged": True})


@app.get("/stream")
async def stream() -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk

    return Response(chunks(), mimetype="text/plain")
