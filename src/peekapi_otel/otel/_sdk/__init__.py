"""The one seam into OpenTelemetry's internals.

The modules of this package are the only ones that may read a private OpenTelemetry
name or patch a class of an instrumentation package (``tests/test_architecture.py``
enforces it):

* here: span kinds, the reads of a span's fields and attributes, and the two points
  where a span's credential headers can still be cleaned;
* ``_context``: the current span, span contexts and the SDK's samplers;
* ``_patches``: the patches of instrumentation classes, each recorded and reversible.

Each read is a named function with two paths: a fast one through the SDK's own fields,
chosen once at import when the installed SDK still has them, and a fallback through the
public API that gives the same answer on any SDK. The switches are module globals of
the module that reads them (here ``FAST_SPANS``, ``span_kind``, ``PLAIN_DICT``,
``ENDING_HOOK`` and ``WRITE_GUARD``; ``CONTEXT_GET``, ``TUPLE_LAYOUT`` and
``SAMPLER_FIELDS`` in ``_context``), so that tests can turn each fast path off and prove
the fallback (``tests/test_sdk.py``).

Every patch is undone by :func:`undo_patches` (when the last processor shuts down and
when the process state is reset), and is listed in the README.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode

from peekapi_otel._schema import METHOD, TARGET, URL_PATH
from peekapi_otel.core import _record
from peekapi_otel.core._record import Record
from peekapi_otel.otel._sdk import _context
from peekapi_otel.otel._sdk._context import (
    IS_REMOTE,
    SDK_SPAN,
    SPAN_ID,
    TRACE_ID,
    current_recording_span,
    parent_based_delegates,
    parent_position,
    static_decision,
)
from peekapi_otel.otel._sdk._patches import (
    exclude_message_spans,
    hold_span_end,
    install_wsgi_counter,
    patch_asgi_middleware,
    patch_instrumentor,
    replace_attribute,
    undo_patches,
)

__all__ = [
    "ENDING_HOOK",
    "FAST_SPANS",
    "PLAIN_DICT",
    "SDK_SPAN",
    "WRITE_GUARD",
    "EndingHook",
    "attributes_of",
    "current_recording_span",
    "ending_attributes",
    "exclude_message_spans",
    "guard_attribute_writes",
    "hold_span_end",
    "install_wsgi_counter",
    "is_request_span",
    "overwrite_attribute",
    "parent_based_delegates",
    "parent_position",
    "patch_asgi_middleware",
    "patch_instrumentor",
    "put_attributes",
    "record_of",
    "replace_attribute",
    "set_attribute_cleaner",
    "span_kind",
    "span_processors",
    "static_decision",
    "undo_patches",
]

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
    if SDK_SPAN is None or not _context.TUPLE_LAYOUT:
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
