"""The seam's patches of instrumentation classes, each recorded and reversible.

Two things public hooks cannot do: the ASGI middleware offers no hook that sees
response bodies unless it also makes a span per message, and an instrumentor built by
the user's code without our hooks has no public place to add them. Each patch is
recorded here and undone by :func:`undo_patches` (when the last processor shuts down
and when the process state is reset), and is listed in the README.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import Span

_logger = logging.getLogger(__name__)

_patch_lock = threading.Lock()
#: (owner, attribute, what ``owner.__dict__`` held before, or ``_MISSING``).
_patches: list[tuple[object, str, object]] = []
_MISSING: Final = object()


def _patch(owner: object, name: str, replacement: object) -> None:
    _patches.append((owner, name, owner.__dict__.get(name, _MISSING)))
    setattr(owner, name, replacement)


def _patched(owner: object, name: str) -> bool:
    return any(o is owner and n == name for o, n, _ in _patches)


def replace_attribute(owner: object, name: str, replacement: object) -> bool:
    """Set ``owner.name`` to ``replacement`` until :func:`undo_patches`, once: False (and
    nothing changed) when it is replaced already. For patches of instrumentation classes
    (or of a framework class or module the framework glue must reach) that the functions
    below do not cover."""
    with _patch_lock:
        if _patched(owner, name):
            return False
        _patch(owner, name, replacement)
        return True


def undo_patches() -> None:
    """Give every patched class its own attributes back, newest patch first."""
    with _patch_lock:
        while _patches:
            owner, name, before = _patches.pop()
            if before is _MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, before)


def _run_after_init(
    cls: type, after: Callable[[Any, tuple[Any, ...], dict[str, Any]], None]
) -> None:
    """Call ``after(instance, args, kwargs)`` at the end of every ``cls.__init__`` from
    now on; nothing changes if ``cls.__init__`` is patched already."""
    with _patch_lock:
        if _patched(cls, "__init__"):
            return
        original = cls.__init__  # type: ignore[misc]  # read to be wrapped, not called

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            after(self, args, kwargs)

        _patch(cls, "__init__", __init__)


def patch_asgi_middleware(after_init: Callable[[Any, bool], None]) -> bool:
    """Run ``after_init(middleware, exclude_spans_given)`` after every
    ``OpenTelemetryMiddleware.__init__`` from now on (FastAPI and Starlette build one per
    app). False when the ASGI instrumentation is not installed."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        return False
    signature = inspect.signature(OpenTelemetryMiddleware.__init__)

    def after(middleware: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        given = "exclude_spans" in signature.bind(middleware, *args, **kwargs).arguments
        after_init(middleware, given)

    _run_after_init(OpenTelemetryMiddleware, after)
    return True


def exclude_message_spans(middleware: Any) -> None:
    """Make an ``OpenTelemetryMiddleware`` leave out its per-message send/receive spans,
    as ``exclude_spans=["send", "receive"]`` would have."""
    middleware.exclude_receive_span = middleware.exclude_send_span = True


_Merge = Callable[[dict[str, Any]], dict[str, Any]]


def patch_instrumentor(cls: type, merge: _Merge) -> None:
    """Pass the keyword arguments of ``cls().instrument(...)`` (and of Flask's
    ``instrument_app``) through ``merge`` from now on, so our hooks reach an
    instrumentor the user's code or another distro builds. Idempotent."""
    with _patch_lock:
        if _patched(cls, "_instrument"):
            return
        original = cls._instrument  # type: ignore[attr-defined]

        def _instrument(self: Any, **kwargs: Any) -> Any:
            return original(self, **_merged(merge, kwargs))

        _patch(cls, "_instrument", _instrument)
        app_method = cls.__dict__.get("instrument_app")
        if isinstance(app_method, staticmethod) and cls.__name__ == "FlaskInstrumentor":
            _patch(cls, "instrument_app", staticmethod(_with_merged_hooks(app_method, merge)))


def _merged(merge: _Merge, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return merge(kwargs)
    except Exception:
        _logger.exception("peekapi-otel could not add its hooks")
        return kwargs


def _with_merged_hooks(method: staticmethod[..., Any], merge: _Merge) -> Callable[..., Any]:
    original = method.__func__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def instrument_app(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # let the original report the mistake
            return original(*args, **kwargs)
        arguments = dict(bound.arguments)
        app = arguments.pop(next(iter(signature.parameters)))
        return original(app, **_merged(merge, arguments))

    return instrument_app


# --- WSGI body counting ---------------------------------------------------------------
#
# The OpenTelemetry WSGI middleware ends its span once the server has iterated and
# closed the app's response, but no hook sees that response: wrapping the app the
# middleware calls is the only way to count a streamed body. Flask and Django end their
# span before the server writes a streamed body at all, so the span's end is held back
# until the body is done (the span then also lasts as long as the response, as it does
# under the WSGI and ASGI middlewares). Without these, sizes come from Content-Length.


def install_wsgi_counter(wrap: Callable[[Any], Any]) -> bool:
    """Every ``opentelemetry.instrumentation.wsgi.OpenTelemetryMiddleware`` created from
    now on calls ``wrap(app)`` instead of the app it was given (once per middleware).
    Undone by :func:`undo_patches`.

    Returns ``False`` when the WSGI instrumentation is not installed.
    """
    try:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    except ImportError:
        return False

    def after(middleware: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        middleware.wsgi = wrap(middleware.wsgi)

    _run_after_init(OpenTelemetryMiddleware, after)
    return True


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
