from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS
from litestar import Litestar, Request, Response, get, post, route
from litestar.datastructures import Cookie
from litestar.response import Stream


@route("/json", http_method=["GET", "HEAD"])
async def json_endpoint() -> Response[dict[str, Any]]:
    return Response(JSON_BODY, cookies=[Cookie(key="sid", value=SET_COOKIE_SECRET)])


@post("/items", status_code=201)
async def create(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"created": await request.json()}


@get("/items/{item_id:int}")
async def item(item_id: int) -> dict[str, Any]:
    return {"item_id": item_id}


@get("/boom")
async def boom() -> None:
    raise RuntimeError("boom from the handler")


@get("/purge")  # Litestar refuses unknown methods such as PURGE: 405
async def purge() -> dict[str, Any]:
    return {"purged": True}


@get("/stream")
async def stream() -> Stream:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return Stream(chunks(), media_type="text/plain")


def build(**otel_config: Any) -> Litestar:
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return Litestar(
        route_handlers=[json_endpoint, create, item, boom, purge, stream],
        plugins=[OpenTelemetryPlugin(OpenTelemetryConfig(**otel_config))],
        debug=False,
    )
