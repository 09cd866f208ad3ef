"""Straight reads of OpenTelemetry's current span and span contexts, for the code that
runs for every span (the sampler wrap) or every request (the ASGI layer).

The API's ``get_current_span()`` is four Python calls and each ``SpanContext`` field a
property call; the SDK's own types allow cheaper reads, checked once at import. Every
read here has a fallback through the public API for other types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
)


def _context_getter() -> Callable[[], Any] | None:
    """``ContextVar.get`` of the default runtime context, or ``None`` when another
    runtime context is configured."""
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext:
            return _RUNTIME_CONTEXT._current_context.get
    except (ImportError, AttributeError):
        pass
    return None


def _span_key() -> str:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY

        return _SPAN_KEY
    except ImportError:  # pragma: no cover - the key has had this name since 1.0
        return "current-span"


def _sdk_span_type() -> type | None:
    try:
        from opentelemetry.sdk.trace import _Span

        return _Span
    except ImportError:  # pragma: no cover - another SDK
        return None


def _tuple_layout() -> bool:
    """``SpanContext`` is a tuple of (trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid); index reads are used only if that still holds."""
    try:
        state = TraceState([("k", "v")])
        ctx = SpanContext(3, 5, True, TraceFlags(1), state)
        invalid = SpanContext(0, 5, False, TraceFlags(0))
        return (
            isinstance(ctx, tuple)
            and tuple(ctx) == (3, 5, True, TraceFlags(1), state, True)
            and invalid[5] is False
            and invalid[4] is invalid.trace_state
        )
    except Exception:  # noqa: BLE001 - any surprise: use the properties
        return False


CONTEXT_GET: Final = _context_getter()
SPAN_KEY: Final = _span_key()
#: The SDK's span class (``is_recording()`` is ``_end_time is None``; the context is
#: ``_context``). ``Any``: mypy narrows ``type(x) is`` this to ``object``.
SDK_SPAN: Final[Any] = _sdk_span_type()
#: Span types whose ``get_span_context()`` returns ``_context``.
CONTEXT_FIELD: Final = frozenset(t for t in (SDK_SPAN, NonRecordingSpan) if t is not None)
TUPLE_LAYOUT: Final = _tuple_layout()
#: ``SpanContext`` index of each field, for :data:`TUPLE_LAYOUT`.
TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3
TRACE_STATE: Final = 4
IS_VALID: Final = 5


def current_recording_span() -> Span | None:
    """The current span if it records, through the API: the fallback for callers whose
    inline read of :data:`CONTEXT_GET` found no live SDK span."""
    span = get_current_span()
    return span if span.is_recording() else None
