from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, jsonify, request
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS

app = Flask(__name__)


@app.route("/json", methods=["GET", "HEAD"])
def json_endpoint() -> Response:
    response = jsonify(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


@app.post("/items")
def create() -> tuple[Response, int]:
    return jsonify({"created": request.get_json()}), 201


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    return jsonify({"item_id": item_id})


@app.get("/boom")
def boom() -> Response:
    raise RuntimeError("boom from the handler")


@app.route("/purge", methods=["PURGE"])
def purge() -> Response:
    return jsonify({"purged": True})


@app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return Response(chunks(), mimetype="text/plain")
