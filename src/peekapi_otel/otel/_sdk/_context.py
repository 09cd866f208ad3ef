"""The seam's reads of the current span, span contexts and samplers.

The API's ``get_current_span()`` is four Python calls and each ``SpanContext`` field a
property call; the sampler wrap runs for every span and the ASGI layer for every
request, so they read the context variable and the tuple straight when they can. The
switches ``CONTEXT_GET``, ``TUPLE_LAYOUT`` and ``SAMPLER_FIELDS`` turn each fast path
off (``tests/test_sdk.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, StaticSampler
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.trace import propagation as trace_propagation


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


def _sdk_span_type() -> type | None:
    try:
        from opentelemetry.sdk.trace import _Span

        return _Span
    except ImportError:  # another SDK
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


CONTEXT_GET: Callable[[], Any] | None = _context_getter()
#: The context key of the current span (it has had this name since 1.0).
SPAN_KEY: Final[str] = getattr(trace_propagation, "_SPAN_KEY", "current-span")
#: The SDK's span class (``is_recording()`` is ``_end_time is None``; the context is
#: ``_context``). ``Any``: mypy narrows ``type(x) is`` this to ``object``.
SDK_SPAN: Final[Any] = _sdk_span_type()
#: Span types whose ``get_span_context()`` returns ``_context``.
_CONTEXT_FIELD: Final = frozenset(t for t in (SDK_SPAN, NonRecordingSpan) if t is not None)
TUPLE_LAYOUT: bool = _tuple_layout()
#: ``SpanContext`` index of each field, for :data:`TUPLE_LAYOUT`.
TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3
TRACE_STATE: Final = 4
IS_VALID: Final = 5

_SAMPLED: Final = TraceFlags.SAMPLED

#: :func:`parent_position` results: where a span stands relative to its parent.
ROOT, REMOTE_SAMPLED, REMOTE_NOT_SAMPLED, LOCAL_SAMPLED, LOCAL_NOT_SAMPLED = range(5)


def current_recording_span() -> Span | None:
    """The current span if it records (``None`` otherwise)."""
    if CONTEXT_GET is not None:
        span: Any = CONTEXT_GET().get(SPAN_KEY)
        if type(span) is SDK_SPAN and span._end_time is None:
            return span  # type: ignore[no-any-return]
    current = get_current_span()
    return current if current.is_recording() else None


def parent_position(parent_context: Any) -> tuple[int, TraceState | None]:
    """Where a new span stands (:data:`ROOT`, :data:`REMOTE_SAMPLED`...) given the
    ``parent_context`` a sampler receives (``None``: the current context), and the
    parent's trace state (``None`` for a root)."""
    span: Any = None
    if CONTEXT_GET is not None:
        span = (CONTEXT_GET() if parent_context is None else parent_context).get(SPAN_KEY)
    if type(span) in _CONTEXT_FIELD:
        parent = span._context
    elif span is None and CONTEXT_GET is not None:
        return ROOT, None
    else:
        parent = get_current_span(parent_context).get_span_context()
    if TUPLE_LAYOUT and type(parent) is SpanContext:
        if not parent[IS_VALID]:
            return ROOT, None
        state = parent[TRACE_STATE]
        sampled = parent[TRACE_FLAGS] & _SAMPLED
        if parent[IS_REMOTE]:
            return (REMOTE_SAMPLED if sampled else REMOTE_NOT_SAMPLED), state
        return (LOCAL_SAMPLED if sampled else LOCAL_NOT_SAMPLED), state
    if parent is None or not parent.is_valid:
        return ROOT, None
    sampled = parent.trace_flags.sampled
    if parent.is_remote:
        return (REMOTE_SAMPLED if sampled else REMOTE_NOT_SAMPLED), parent.trace_state
    return (LOCAL_SAMPLED if sampled else LOCAL_NOT_SAMPLED), parent.trace_state


# --- Samplers -------------------------------------------------------------------------

#: Read the SDK samplers' own fields (else ask them through ``should_sample``).
SAMPLER_FIELDS: bool = True


def static_decision(sampler: object) -> Decision | None:
    """The fixed decision of an SDK ``StaticSampler`` (ALWAYS_ON/ALWAYS_OFF), else
    ``None``."""
    if not isinstance(sampler, StaticSampler) or (
        type(sampler).should_sample is not StaticSampler.should_sample
    ):
        return None
    decision = getattr(sampler, "_decision", None) if SAMPLER_FIELDS else None
    if isinstance(decision, Decision):
        return decision
    # Public: a static sampler answers the same whatever it is asked.
    try:
        return sampler.should_sample(None, 0, "probe").decision
    except Exception:  # noqa: BLE001 - an odd sampler is wrapped as it is
        return None


_PARENT_BASED_FIELDS: Final = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def parent_based_delegates(sampler: object) -> tuple[Sampler, ...] | None:
    """The five delegates of an SDK ``ParentBased`` (in :func:`parent_position` order),
    or ``None`` when they cannot be read (the caller then wraps it as it is)."""
    if (
        not SAMPLER_FIELDS
        or not isinstance(sampler, ParentBased)
        or type(sampler).should_sample is not ParentBased.should_sample
    ):
        return None
    delegates = tuple(getattr(sampler, name, None) for name in _PARENT_BASED_FIELDS)
    if not all(isinstance(d, Sampler) for d in delegates):
        return None
    return delegates  # type: ignore[return-value]  # checked: all samplers
