"""``make_app()`` builds a new Pyramid app (after instrumenting)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS, dumps
from pyramid.config import Configurator
from pyramid.response import Response


def _json(value: Any, status: int = 200) -> Response:
    return Response(body=dumps(value), status=status, content_type="application/json")


def json_endpoint(request: Any) -> Response:
    response = _json(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


def create(request: Any) -> Response:
    return _json({"created": request.json_body}, 201)


def item(request: Any) -> Response:
    return _json({"item_id": int(request.matchdict["item_id"])})


def boom(request: Any) -> Response:
    raise RuntimeError("boom from the handler")


def purge(request: Any) -> Response:
    return _json({"purged": True})


def stream(request: Any) -> Response:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return Response(app_iter=chunks(), content_type="text/plain")


def make_app() -> Any:
    with Configurator() as config:
        config.add_route("json", "/json", request_method=("GET", "HEAD"))
        config.add_route("items", "/items", request_method="POST")
        config.add_route("item", r"/items/{item_id:\d+}")
        config.add_route("boom", "/boom")
        config.add_route("purge", "/purge", request_method="PURGE")
        config.add_route("stream", "/stream")
        for name, view in (
            ("json", json_endpoint),
            ("items", create),
            ("item", item),
            ("boom", boom),
            ("purge", purge),
            ("stream", stream),
        ):
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()
