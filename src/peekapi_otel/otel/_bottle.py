"""Bottle: no OpenTelemetry instrumentation of its own, so the WSGI middleware with our
hooks; the response hook adds the matched route rule (``/items/<item_id:int>``), which
Bottle keeps in the environ once it has routed the request (a 404 keeps the raw path)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import put_route
from peekapi_otel.otel._wsgi import wsgi_response_hook


def bottle_response_hook(
    span: Span, environ: dict[str, Any], status: str, headers: list[tuple[str, str]]
) -> None:
    wsgi_response_hook(span, environ, status, headers)
    try:
        if not span.is_recording():
            return
        route = environ.get("bottle.route")
        rule = getattr(route, "rule", None)
        if isinstance(rule, str) and rule:
            put_route(span, str(environ.get("REQUEST_METHOD") or ""), rule)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)
