from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS

app = FastAPI()


@app.api_route("/json", methods=["GET", "HEAD"])
def json_endpoint() -> Response:
    response = JSONResponse(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


@app.post("/items", status_code=201)
async def create(request: Request) -> dict[str, Any]:
    return {"created": await request.json()}


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, Any]:
    return {"item_id": item_id}


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("boom from the handler")


@app.api_route("/purge", methods=["PURGE"])
def purge() -> dict[str, Any]:
    return {"purged": True}


@app.get("/stream")
def stream() -> StreamingResponse:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return StreamingResponse(chunks(), media_type="text/plain")
