"""Pyramid: ``opentelemetry-instrumentation-pyramid`` takes no hooks, so a tween of ours
sits under its tween and over Pyramid's exception view. The span is started by a
``BeforeTraversal`` subscriber inside the router and ended by the OpenTelemetry tween,
so it is the current span when the response (or an exception) comes back through our
tween: the consumer, the request size and the response size go on it there.

A streamed body (an ``app_iter`` without Content-Length) is sent after the span ended:
its size is unknown (0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import trace

from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import content_length, put_response_size
from peekapi_otel.otel._sdk import replace_attribute
from peekapi_otel.otel._wsgi import wsgi_request_hook

TWEEN: Final = "peekapi_otel.otel._pyramid.peekapi_tween_factory"
_OTEL_TWEEN: Final = "opentelemetry.instrumentation.pyramid.trace_tween_factory"
_PATCHED: Final = "_peekapi_tween_added"


def _response_size(request: Any, response: Any) -> int | None:
    if getattr(request, "method", None) == "HEAD":
        return 0
    if callable(getattr(response, "prepare", None)):
        # An HTTPException (the 404 page...) renders its body when it is served; doing
        # it now gives the same body (same environ), and serving it reuses it.
        from pyramid.httpexceptions import HTTPException

        if isinstance(response, HTTPException):
            response.prepare(request.environ)
    size = content_length(getattr(response, "content_length", None))
    if size is not None:
        return size
    app_iter = getattr(response, "app_iter", None)
    if isinstance(app_iter, (list, tuple)):
        return sum(len(chunk) for chunk in app_iter)
    return None  # a generator: not read here, it is the client's body


def _record(request: Any, response: Any) -> None:
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        wsgi_request_hook(span, request.environ)
        if response is not None:
            size = _response_size(request, response)
            if size is not None:
                put_response_size(span, size)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def peekapi_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    def peekapi_tween(request: Any) -> Any:
        try:
            response = handler(request)
        except BaseException:
            _record(request, None)
            raise
        _record(request, response)
        return response

    return peekapi_tween


def includeme(config: Any) -> None:
    """``config.include(...)``: add the PeekAPI tween (under the OpenTelemetry one)."""
    from pyramid.tweens import EXCVIEW, INGRESS

    if getattr(config.registry, _PATCHED, False):
        return
    setattr(config.registry, _PATCHED, True)
    config.add_tween(TWEEN, under=(_OTEL_TWEEN, INGRESS), over=EXCVIEW)


def install_tween_on_every_app() -> bool:
    """Every Pyramid app built from now on gets the tween (zero-code): added right
    before ``make_wsgi_app`` commits the configuration."""
    try:
        from pyramid.config import Configurator
    except ImportError:
        return False
    original = Configurator.make_wsgi_app

    @functools.wraps(original)
    def make_wsgi_app(self: Any) -> Any:
        try:
            self.include(includeme)
        except Exception as exc:  # noqa: BLE001 - the app still starts, uncounted sizes
            report(exc)
        return original(self)

    # Undone with the other patches when the last PeekAPI processor shuts down.
    replace_attribute(Configurator, "make_wsgi_app", make_wsgi_app)
    return True
