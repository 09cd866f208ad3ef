"""aiohttp server: ``opentelemetry-instrumentation-aiohttp-server`` takes no hooks. It
replaces ``aiohttp.web.Application`` by a subclass that puts its middleware first; ours
goes right after it, inside the span, and a ``on_response_prepare`` signal counts the
bytes of a streamed response as they are written.

The route is ``resource.canonical`` (``/items/{item_id}``; none for a 404), as the
instrumentation reports it since its semantic-convention opt-in; older releases put the
handler's name in ``http.route`` and the query only in a malformed ``http.url``, so the
middleware sets the route and, where the span has no query, our own copy of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Span

from peekapi_otel._schema import ATTR_REQUEST_SIZE
from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import (
    content_length,
    put_query_if_missing,
    put_request,
    put_response_size,
    put_route_if_other,
)
from peekapi_otel.otel._sdk import replace_attribute

_SPAN_KEY: Final = "peekapi_otel.span"
_SENT_KEY: Final = "peekapi_otel.sent"
_PATCHED: Final = "_peekapi_middleware_added"


def _request_size(request: Any) -> int:
    size = content_length(request.content_length)
    if size is not None:
        return size
    # Chunked: what the handler read (the StreamReader's count).
    return int(getattr(request.content, "total_bytes", 0) or 0)


def _canonical(request: Any) -> str:
    """The matched resource's template; ``""`` when no resource matched (a 404)."""
    try:
        return str(request.match_info.route.resource.canonical)
    except AttributeError:  # a system route (404, 405) has no resource
        return ""


def _start(span: Span, request: Any) -> None:
    headers = request.headers
    put_request(
        span,
        headers.get,
        lambda: {k.lower(): v for k, v in headers.items()},
        content_length(request.content_length) or 0,
        str(request.method),
    )
    put_route_if_other(span, _canonical(request))
    put_query_if_missing(span, str(request.path_qs))


def _finish(span: Span, request: Any, response: Any) -> None:
    if request.method == "HEAD":
        size: int | None = 0
    elif request.get(_SENT_KEY) is not None:  # prepared in the handler: bytes written
        size = request[_SENT_KEY][0]
    else:
        body = getattr(response, "body", None)
        if isinstance(body, (bytes, bytearray)):
            size = len(body)
        else:
            size = content_length(getattr(response, "content_length", None))
    if content_length(request.content_length) is None:
        read = _request_size(request)
        if read:
            span.set_attribute(ATTR_REQUEST_SIZE, read)
    if size is not None:
        put_response_size(span, size)


def _middleware() -> Any:
    from aiohttp import web

    @web.middleware
    async def peekapi_middleware(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        span: Span | None = None
        try:
            current = trace.get_current_span()
            if current.is_recording():
                span = current
                request[_SPAN_KEY] = span
                _start(span, request)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if span is not None:
                _safe_finish(span, request, exc)
            raise
        if span is not None:
            _safe_finish(span, request, response)
        return response

    return peekapi_middleware


def _safe_finish(span: Span, request: Any, response: Any) -> None:
    try:
        _finish(span, request, response)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


async def _on_response_prepare(request: Any, response: Any) -> None:
    """Count what a handler-prepared (streamed) response writes."""
    try:
        if request.get(_SPAN_KEY) is None or request.get(_SENT_KEY) is not None:
            return
        sent = [0]
        request[_SENT_KEY] = sent
        write = response.write

        async def counting_write(data: Any) -> None:
            try:
                sent[0] += len(data)
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)
            await write(data)

        response.write = counting_write
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


MIDDLEWARE: Any = None


def middleware() -> Any:
    """The PeekAPI aiohttp middleware; put it right after OpenTelemetry's."""
    global MIDDLEWARE
    if MIDDLEWARE is None:
        MIDDLEWARE = _middleware()
    return MIDDLEWARE


def add_to_app(app: Any) -> None:
    """The signal that counts streamed responses (the middleware needs it)."""
    app.on_response_prepare.append(_on_response_prepare)


def install_middleware_on_every_app() -> bool:
    """Every ``aiohttp.web.Application`` created from now on gets our middleware right
    after the OpenTelemetry one (call it after the instrumentor's ``instrument()``)."""
    try:
        from aiohttp import web
    except ImportError:
        return False
    current = web.Application
    if getattr(current, _PATCHED, False):
        return True
    ours = middleware()

    class PeekApiApplication(current):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                kwargs["middlewares"] = [ours, *kwargs.get("middlewares", ())]
            except Exception as exc:  # noqa: BLE001 - the app still starts, uncounted
                report(exc)
            super().__init__(*args, **kwargs)
            try:
                add_to_app(self)
            except Exception as exc:  # noqa: BLE001 - the app still starts, uncounted
                report(exc)

    setattr(PeekApiApplication, _PATCHED, True)
    # As the instrumentation does; undone with the other patches when the last PeekAPI
    # processor shuts down.
    replace_attribute(web, "Application", PeekApiApplication)
    return True
