"""Falcon: hooks for ``opentelemetry-instrumentation-falcon`` (WSGI ``falcon.App``), and
the ASGI app (``falcon.asgi.App``, which that instrumentation does not patch) behind the
OpenTelemetry ASGI middleware with a Falcon middleware that reports the route template.

The Falcon instrumentation ends its span when ``App.__call__`` returns, before a
streamed body (``resp.stream``) is iterated: that body's size is known only from a
Content-Length the app set.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import content_length, put_response_size, put_route
from peekapi_otel.otel._wsgi import wsgi_request_hook


def falcon_request_hook(span: Span, req: Any) -> None:
    try:
        wsgi_request_hook(span, req.env)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def _body_size(req: Any, resp: Any) -> int | None:
    if getattr(req, "method", None) == "HEAD":
        return 0
    if getattr(resp, "stream", None) is not None:
        return content_length(getattr(resp, "content_length", None))
    body = resp.render_body()
    return len(body) if body else 0


def falcon_response_hook(span: Span, req: Any, resp: Any) -> None:
    try:
        if not span.is_recording():
            return
        size = _body_size(req, resp)
        if size is not None:
            put_response_size(span, size)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


class FalconRouteMiddleware:
    """Falcon (ASGI) middleware: the matched ``uri_template`` as ``http.route``."""

    async def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        try:
            template = getattr(req, "uri_template", None)
            if resource is not None and isinstance(template, str) and template:
                span = trace.get_current_span()
                if span.is_recording():
                    put_route(span, str(getattr(req, "method", "") or ""), template)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)


def instrument_falcon_asgi(app: Any, **middleware_kwargs: Any) -> Any:
    """``falcon.asgi.App`` behind the OpenTelemetry ASGI middleware, with the route.

    Call it before the app serves its first request (Falcon freezes its middleware
    then). Returns the ASGI app to serve.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.add_middleware(FalconRouteMiddleware())
    return OpenTelemetryMiddleware(app, **middleware_kwargs)
