"""Litestar: the route template instead of ``"METHOD /raw/path"``.

Litestar's OpenTelemetry plugin wraps the whole app, router included, in the
OpenTelemetry ASGI middleware, so when the span starts the route is not known yet; its
default ``scope_span_details_extractor`` then puts ``"GET /items/42"`` into
``http.route``. The router later stores the template in ``scope["path_template"]``
(the same scope dict): a small layer inside the middleware copies it onto the span when
the response starts. 404s keep the raw path (no ``http.route``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import put_route
from peekapi_otel.otel._sdk import replace_attribute

_logger = logging.getLogger(__name__)


def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A ``scope_span_details_extractor``: the method alone until the route is known
    (and the template when a router already ran), never ``"METHOD /raw/path"``."""
    method = str(scope.get("method") or "").strip()
    if not method:  # websocket: what Litestar does
        path = str(scope.get("path") or "").strip()
        return path, {"http.route": path}
    template = scope.get("path_template")
    if template:
        return f"{method} {template}", {"http.route": template}
    return method, {}


class RouteFromScope:
    """Sits inside the OpenTelemetry ASGI middleware (the server span is current) and
    copies ``scope["path_template"]`` onto the span when the response starts."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    # A coroutine function: the middleware tells ASGI 3 apps from ASGI 2 ones by that.
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            try:
                span = trace.get_current_span()
                if span.is_recording():
                    send = _route_on_start(span, scope, send)
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)
        await self.app(scope, receive, send)


def _route_on_start(span: trace.Span, scope: dict[str, Any], send: Any) -> Callable[..., Any]:
    pending = [True]

    def routed_send(message: Any) -> Any:
        if pending[0]:
            try:
                if message.get("type") == "http.response.start":
                    pending[0] = False
                    template = scope.get("path_template")
                    if template and isinstance(template, str):
                        put_route(span, str(scope.get("method") or ""), template)
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)
        return send(message)

    return routed_send


def _default_extractor() -> Any:
    import dataclasses

    from litestar.plugins.opentelemetry import OpenTelemetryConfig

    for field in dataclasses.fields(OpenTelemetryConfig):
        if field.name == "scope_span_details_extractor":
            return field.default
    return None


def config_kwargs() -> dict[str, Any]:
    """``OpenTelemetryConfig(**config_kwargs())``: our span details extractor (the route
    layer joins every Litestar OpenTelemetry middleware that uses it or the default).

    Litestar's plugin builds ``OpenTelemetryInstrumentationMiddleware`` itself, whatever
    ``middleware_class`` says, so the layer is added there rather than by a subclass.
    """
    install_default_route_fix()
    return {"scope_span_details_extractor": span_details}


def install_default_route_fix() -> bool:
    """Make Litestar's own OpenTelemetry middleware report the route template when the
    user kept the default ``scope_span_details_extractor`` or passed ours (any other
    extractor is left alone, and so is its span)."""
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryInstrumentationMiddleware
    except ImportError:
        return False
    cls = OpenTelemetryInstrumentationMiddleware
    default = _default_extractor()
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, app: Any, config: Any) -> None:
        fix = routed = False
        try:
            extractor = getattr(config, "scope_span_details_extractor", None)
            fix = extractor is default
            routed = fix or extractor is span_details
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        if routed:
            app = RouteFromScope(app)
        original(self, app=app, config=config)
        if fix:
            try:
                self.open_telemetry_middleware.default_span_details = span_details
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)

    # Undone with the other patches when the last PeekAPI processor shuts down.
    replace_attribute(cls, "__init__", __init__)
    return True
