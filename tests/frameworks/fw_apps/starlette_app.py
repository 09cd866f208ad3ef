from __future__ import annotations

from collections.abc import Iterator

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def json_endpoint(request: Request) -> Response:
    response = JSONResponse(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


async def create(request: Request) -> Response:
    return JSONResponse({"created": await request.json()}, status_code=201)


def item(request: Request) -> Response:
    return JSONResponse({"item_id": request.path_params["item_id"]})


def boom(request: Request) -> Response:
    raise RuntimeError("boom from the handler")


def purge(request: Request) -> Response:
    return JSONResponse({"purged": True})


def stream(request: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return StreamingResponse(chunks(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/json", json_endpoint, methods=["GET", "HEAD"]),
        Route("/items", create, methods=["POST"]),
        Route("/items/{item_id:int}", item),
        Route("/boom", boom),
        Route("/purge", purge, methods=["PURGE"]),
        Route("/stream", stream),
    ]
)
