"""A one-module Django project: settings, views and URLconf.

Call :func:`setup` (after instrumenting) before using it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS


def configure_settings() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
            LOGGING_CONFIG=None,
        )


def json_endpoint(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(JSON_BODY)
    response.set_cookie("sid", SET_COOKIE_SECRET)
    return response


def items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"created": json.loads(request.body)}, status=201)


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return JsonResponse({"item_id": item_id})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom from the handler")


def purge(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"purged": True})


def stream(request: HttpRequest) -> HttpResponse:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("json", json_endpoint),
    path("items", items),
    path("items/<int:item_id>", item),
    path("boom", boom),
    path("purge", purge),
    path("stream", stream),
]
