"""The one seam into OpenTelemetry's internals.

This is the only module that may read a private OpenTelemetry name or patch a class of
an instrumentation package (``tests/test_architecture.py`` enforces it). Each read here
is a named function with two paths: a fast one through the SDK's own fields, chosen
once at import when the installed SDK still has them, and a fallback through the public
API that gives the same answer on any SDK. The switches (``CONTEXT_GET``,
``TUPLE_LAYOUT``, ``FAST_SPANS``, ``SAMPLER_FIELDS``, ``span_kind``, ``PLAIN_DICT``,
``ENDING_HOOK``, ``WRITE_GUARD``) are module globals so that tests can turn each fast
path off and prove the fallback (``tests/test_sdk.py``).

Every patch of a contrib class is recorded and undone by :func:`undo_patches` (when the
last processor shuts down and when the process state is reset), and is listed in the
README.
"""

from __future__ import annotations

import functools
import inspect
import logging
import operator
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.trace import propagation as trace_propagation

from peekapi_otel._schema import METHOD, TARGET, URL_PATH
from peekapi_otel.core import _record
from peekapi_otel.core._record import Record

_logger = logging.getLogger(__name__)

# --- Current span and span contexts ---------------------------------------------------
#
# The API's ``get_current_span()`` is four Python calls and each ``SpanContext`` field a
# property call; the sampler wrap runs for every span and the ASGI layer for every
# request, so they read the context variable and the tuple straight when they can.


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


# --- Span fields ----------------------------------------------------------------------


def _kind_getter() -> Callable[[Any], SpanKind]:
    """A C-level read of ``ReadableSpan._kind`` when the SDK still keeps the kind
    there (the ``kind`` property costs a Python call, for every span of the app)."""
    try:
        if ReadableSpan(name="probe", kind=SpanKind.SERVER)._kind is SpanKind.SERVER:
            return operator.attrgetter("_kind")
    except Exception:  # noqa: BLE001 - another SDK: the public property
        pass
    return operator.attrgetter("kind")


#: ``span_kind(span)``: the kind of a live or ended SDK span.
span_kind: Callable[[Any], SpanKind] = _kind_getter()


# --- Span reads -----------------------------------------------------------------------
#
# ``on_end`` runs for every span the app ends and the request span's record is read once
# per request: the public properties are a Python call each (``attributes`` also wraps
# the attribute container in a read-only view whose every lookup is Python code), while
# the SDK's span keeps them as plain fields. The fields are read only on spans of the
# probed class; any other span goes through ``peekapi_otel.core._record``.


_METHOD_NEW, _METHOD_OLD = METHOD  # two lookups cost less than a loop over the keys


def _fields_hold_the_properties(span: Any) -> bool:
    public = span.get_span_context()
    return (
        type(span._attributes._dict) is dict
        and span._attributes._dict == {"k": "v"}
        and span._kind is SpanKind.SERVER
        and span._parent is None
        and type(span._context) is SpanContext
        and (span._context[TRACE_ID], span._context[SPAN_ID]) == (public.trace_id, public.span_id)
        and (span._start_time, span._end_time) == (5, 7)
        and span._status._status_code is StatusCode.ERROR
    )


def _probe_span_fields() -> frozenset[type]:
    """The span classes whose fields hold what the public properties return: the SDK's
    live span, and the one a processor's ``on_end`` receives (a ``ReadableSpan`` copy
    that shares the live span's attribute container)."""
    if SDK_SPAN is None or not TUPLE_LAYOUT:
        return frozenset()
    try:
        # Explicit settings: the OTEL_* environment must not decide what the probe sees.
        provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.get_empty(),
            shutdown_on_exit=False,
            span_limits=SpanLimits(max_span_attributes=8, max_attribute_length=8),
        )
        ended: list[Any] = []
        catcher: Any = SpanProcessor()
        catcher.on_end = ended.append  # this probe's own instance
        provider.add_span_processor(catcher)
        span = provider.get_tracer("peekapi-otel-probe").start_span(
            "probe", kind=SpanKind.SERVER, attributes={"k": "v"}, start_time=5
        )
        span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=7)
        return frozenset(type(s) for s in (span, *ended) if _fields_hold_the_properties(s))
    except Exception:  # noqa: BLE001 - any surprise: the public API
        return frozenset()


#: The span classes whose fields :func:`record_of` and :func:`is_request_span` read
#: (empty: public API only).
FAST_SPANS: frozenset[type] = _probe_span_fields()


def _field_attributes(span: Any) -> dict[str, Any] | None:
    """The plain dict behind the attributes of a span the SDK made (a probed class
    with its own attribute container and context), or ``None``: use the public API."""
    if type(span) in FAST_SPANS and type(span._context) is SpanContext:
        container = span._attributes
        if type(container) is BoundedAttributes:
            # A MutableMapping in the stubs of SDK 1.39; the probe saw a plain dict.
            return container._dict  # type: ignore[return-value, unused-ignore]
    return None


def is_request_span(span: ReadableSpan) -> bool:
    """:func:`peekapi_otel.core._record.is_request_span`, from the SDK span's fields."""
    attributes = _field_attributes(span)
    if attributes is None:
        return _record.is_request_span(span)
    if span._kind is not SpanKind.SERVER:
        return False
    parent = span._parent
    if parent is not None and not (
        parent[IS_REMOTE] if type(parent) is SpanContext else parent.is_remote
    ):
        return False
    return _METHOD_NEW in attributes or _METHOD_OLD in attributes


def record_of(span: ReadableSpan) -> Record:
    """:func:`peekapi_otel.core._record.record_of_span`, from the SDK span's fields."""
    attributes = _field_attributes(span)
    if attributes is None:
        return _record.record_of_span(span)
    start, end = span._start_time, span._end_time
    if (URL_PATH not in attributes and TARGET not in attributes) or start is None or end is None:
        return _record.record_of_span(span)  # the span's name may give the path
    context = span._context
    # ``Record(...)`` runs the NamedTuple's Python ``__new__``; this is the same object
    # built in C (timeit, CPython 3.11: 190 ns against 450 ns).
    return tuple.__new__(
        Record,
        (
            attributes,
            context[TRACE_ID],  # type: ignore[index]
            context[SPAN_ID],  # type: ignore[index]
            start,
            end,
            span._status._status_code,
        ),
    )


# --- Span attributes ------------------------------------------------------------------


def _has_plain_dict() -> bool:
    try:
        probe = BoundedAttributes(immutable=False)
        return isinstance(probe._dict, dict) and all(
            hasattr(probe, name) for name in ("_lock", "_immutable", "maxlen", "max_value_len")
        )
    except Exception:  # noqa: BLE001 - another SDK: the public setter is used instead
        return False


#: ``BoundedAttributes`` keeps a plain dict, a lock and the mutability flag.
PLAIN_DICT: bool = _has_plain_dict()


def put_attributes(span: Span, attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """Add ``attrs`` to a live span; the span's own dict when they went straight into it
    (else ``None``: later updates must go through ``set_attribute``).

    ``set_attributes`` takes the span's lock and validates and copies every value, which
    costs several microseconds per call. Ours are plain str/int that need none of it, so
    on the SDK's container they go straight into its dict (under its lock) whenever the
    result is the same: the span is live and no limit applies. (A ``peekapi.*`` key
    that is there already keeps its place instead of moving to the end.)
    """
    bounded = getattr(span, "_attributes", None) if PLAIN_DICT else None
    if isinstance(bounded, BoundedAttributes):
        raw = bounded._dict
        maxlen = bounded.maxlen
        if (
            not bounded._immutable
            and bounded.max_value_len is None
            and (maxlen is None or len(raw) + len(attrs) <= maxlen)
        ):
            with bounded._lock:
                raw.update(attrs)
            # A MutableMapping in the stubs of SDK 1.39; PLAIN_DICT saw a plain dict.
            return raw  # type: ignore[return-value, unused-ignore]
    span.set_attributes(attrs)
    return None


def overwrite_attribute(span: Span, key: str, value: Any) -> None:
    """Replace ``key`` on a live span; stored straight in the span's dict when the key is
    there already (the dict does not grow, so no limit can apply)."""
    sdk: Any = span
    if PLAIN_DICT and type(sdk) is SDK_SPAN and sdk._end_time is None:
        raw = sdk._attributes._dict
        if key in raw:
            raw[key] = value
            return
    put_attributes(span, {key: value})


def attributes_of(span: Any) -> Mapping[str, Any]:
    """The attributes of a live or ended span, without the read-only copy the public
    property makes on a live SDK span."""
    if PLAIN_DICT:
        raw = getattr(getattr(span, "_attributes", None), "_dict", None)
        if type(raw) is dict:
            return raw
    return getattr(span, "attributes", None) or {}


def ending_attributes(span: ReadableSpan) -> dict[str, Any] | None:
    """The mutable dict behind an ending span's attributes (see :class:`EndingHook`), or
    ``None`` when there is none."""
    raw = getattr(getattr(span, "_attributes", None), "_dict", None) if PLAIN_DICT else None
    return raw if type(raw) is dict else None


# --- Credential guard: the ending hook and the attribute write guard ------------------
#
# Captured headers are set after a span started and the SDK has no public point where
# an ended span is still mutable (OTEL-FACTS Q3). Newer SDKs call the processors'
# ``_on_ending`` after the last attribute and before any ``on_end``; older ones have
# only the attribute container, whose writes a subclass can clean.

#: The SDK calls ``SpanProcessor._on_ending`` as a span ends (1.40 and later).
ENDING_HOOK: bool = hasattr(SpanProcessor, "_on_ending") and PLAIN_DICT


class EndingHook(SpanProcessor):
    """A processor base whose :meth:`on_ending` runs for every span of
    :attr:`ending_kinds` after its last attribute was set and before any processor's
    ``on_end``, when the SDK offers that point (:data:`ENDING_HOOK`)."""

    #: The kinds of span :meth:`on_ending` is called for (empty: all). Tested in the
    #: SDK's own call, so the other spans (three of the four of an ASGI request) cost
    #: no further Python call.
    ending_kinds: tuple[SpanKind, ...] = ()

    def on_ending(self, span: ReadableSpan) -> None:
        """Override: the span is ended but :func:`ending_attributes` may still change."""

    def _on_ending(self, span: Any) -> None:
        # Only the SDK calls this, with its own span, whose kind ``span_kind`` reads as
        # its probe found it; ``on_ending`` guards what it does.
        if ENDING_HOOK and (not self.ending_kinds or span_kind(span) in self.ending_kinds):
            self.on_ending(span)


_cleaner: list[Callable[[str, Any], Any]] = []


def _clean(key: str, value: Any) -> Any:
    return _cleaner[0](key, value) if _cleaner else value


class _GuardedAttributes(BoundedAttributes):
    """``BoundedAttributes`` whose one write path passes every value through the
    cleaner: ``_setitem_locked`` where the SDK has it (``__setitem__`` and
    ``set_attributes`` both end there), else ``__setitem__`` (1.39 and older)."""

    if hasattr(BoundedAttributes, "_setitem_locked"):

        def _setitem_locked(self, key: str, value: Any) -> None:
            # Not in SDK 1.39's BoundedAttributes (this branch then is not taken).
            super()._setitem_locked(key, _clean(key, value))  # type: ignore[misc, unused-ignore]

    else:

        def __setitem__(self, key: str, value: Any) -> None:
            super().__setitem__(key, _clean(key, value))


#: Spans' attribute containers can be switched to :class:`_GuardedAttributes`.
WRITE_GUARD: bool = PLAIN_DICT


def set_attribute_cleaner(clean: Callable[[str, Any], Any]) -> None:
    """What :func:`guard_attribute_writes` passes every later attribute write through."""
    _cleaner[:] = [clean]


def guard_attribute_writes(span: Any) -> bool:
    """Pass every later attribute write on ``span`` through the cleaner (O(1): the
    container's class is switched, nothing is copied). False when it cannot be done."""
    attrs = getattr(span, "_attributes", None) if WRITE_GUARD else None
    if type(attrs) is BoundedAttributes:
        attrs.__class__ = _GuardedAttributes
        return True
    return type(attrs) is _GuardedAttributes


# --- Tracer providers -----------------------------------------------------------------


def span_processors(provider: object) -> tuple[SpanProcessor, ...]:
    """The processors added to an SDK ``TracerProvider`` (empty when unknown: the SDK
    has no public accessor)."""
    multi = getattr(provider, "_active_span_processor", None)
    return tuple(getattr(multi, "_span_processors", ()))


# --- Zero-code configurator base ------------------------------------------------------


def __getattr__(name: str) -> Any:
    """``SDKConfigurator``: the SDK's own configurator (``_OTelSDKConfigurator``), the
    base every third-party configurator extends. Imported on first use: it pulls in the
    metrics and logs SDKs, which ``configure()`` users do not need."""
    if name == "SDKConfigurator":
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        return _OTelSDKConfigurator
    raise AttributeError(name)


# --- Patches of instrumentation classes (reversible) ----------------------------------
#
# Two things public hooks cannot do: the ASGI middleware offers no hook that sees
# response bodies unless it also makes a span per message, and an instrumentor built
# by the user's code without our hooks has no public place to add them. Each patch is
# recorded here and undone by :func:`undo_patches`.

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


def patch_asgi_middleware(after_init: Callable[[Any, bool], None]) -> bool:
    """Run ``after_init(middleware, exclude_spans_given)`` after every
    ``OpenTelemetryMiddleware.__init__`` from now on (FastAPI and Starlette build one per
    app). False when the ASGI instrumentation is not installed."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        return False
    with _patch_lock:
        if _patched(OpenTelemetryMiddleware, "__init__"):
            return True
        original = OpenTelemetryMiddleware.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
            original(self, app, *args, **kwargs)
            given = "exclude_spans" in signature.bind(self, app, *args, **kwargs).arguments
            after_init(self, given)

        _patch(OpenTelemetryMiddleware, "__init__", __init__)
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
    with _patch_lock:
        if _patched(OpenTelemetryMiddleware, "__init__"):
            return True
        original = OpenTelemetryMiddleware.__init__

        @functools.wraps(original)
        def __init__(self: Any, wsgi: Any, *args: Any, **kwargs: Any) -> None:
            original(self, wsgi, *args, **kwargs)
            self.wsgi = wrap(self.wsgi)

        _patch(OpenTelemetryMiddleware, "__init__", __init__)
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
