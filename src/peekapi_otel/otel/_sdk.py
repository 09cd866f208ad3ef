"""The only module that patches OpenTelemetry contrib classes or relies on how SDK
objects are built, behind named functions; each has a public fallback and can be undone."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import Span

# WSGI body counting
#
# The OpenTelemetry WSGI middleware ends its span once the server has iterated and
# closed the app's response, but no hook sees that response: wrapping the app the
# middleware calls is the only way to count a streamed body. Flask and Django end their
# span before the server writes a streamed body at all, so the span's end is held back
# until the body is done (the span then also lasts as long as the response, as it does
# under the WSGI and ASGI middlewares). Without these, sizes come from Content-Length.

_WSGI_PATCHED: Final = "_peekapi_counting_wsgi"


def install_wsgi_counter(wrap: Callable[[Any], Any]) -> bool:
    """Every ``opentelemetry.instrumentation.wsgi.OpenTelemetryMiddleware`` created from
    now on calls ``wrap(app)`` instead of the app it was given (once per middleware).

    Returns ``False`` when the WSGI instrumentation is not installed.
    """
    try:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    except ImportError:
        return False
    if getattr(OpenTelemetryMiddleware, _WSGI_PATCHED, None) is not None:
        return True
    original = OpenTelemetryMiddleware.__init__

    @functools.wraps(original)
    def __init__(self: Any, wsgi: Any, *args: Any, **kwargs: Any) -> None:
        original(self, wsgi, *args, **kwargs)
        self.wsgi = wrap(self.wsgi)

    OpenTelemetryMiddleware.__init__ = __init__  # type: ignore[method-assign]
    setattr(OpenTelemetryMiddleware, _WSGI_PATCHED, original)
    return True


def uninstall_wsgi_counter() -> None:
    """Middlewares created from now on are plain again (existing ones keep counting)."""
    try:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    except ImportError:
        return
    original = getattr(OpenTelemetryMiddleware, _WSGI_PATCHED, None)
    if original is not None:
        OpenTelemetryMiddleware.__init__ = original  # type: ignore[method-assign]
        delattr(OpenTelemetryMiddleware, _WSGI_PATCHED)


def hold_span_end(span: Span) -> Callable[[], None] | None:
    """Hold back ``span.end()`` until the returned function is called.

    An ``end()`` in between only notes that the instrumentation is done with the span;
    the returned function then ends it for real (at that moment), or, if nobody has
    ended it yet, just lets the next ``end()`` through. ``None`` when the span is not
    one whose method can be held back this way (then the span ends as usual).
    """
    state: dict[str, Any] | None = getattr(span, "__dict__", None)
    if state is None or "end" in state or not span.is_recording():
        return None
    ended: list[int | None] = []

    def held_end(end_time: int | None = None) -> None:
        ended.append(end_time)

    # An instance attribute shadows the class's method, for this span only.
    state["end"] = held_end

    def release() -> None:
        if state.get("end") is held_end:
            del state["end"]
            if ended:
                span.end()

    return release
