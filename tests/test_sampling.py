"""The sampler wrap: every SERVER span is recorded, nothing else changes.

The wrap over a sampler that decides from the parent alone (the SDK default and the
other ``parentbased_*``/``always_*`` choices) takes its decisions from a table; each case
here compares it with the general wrap around the same sampler, for every kind of parent
and span kind, and with a real provider.
"""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.context import Context, attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from peekapi_otel.otel._sampling import ServerRecordOnly, wrap

STATE = TraceState([("vendor", "value")])


def _parent(remote: bool, sampled: bool) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    ctx = SpanContext(0x1234, 0x5678, is_remote=remote, trace_flags=flags, trace_state=STATE)
    return set_span_in_context(NonRecordingSpan(ctx))


class _OtherSpan(NonRecordingSpan):
    """A span type the wrap has no shortcut for: it asks the API."""


def _local_parent(sampled: bool) -> Context:
    """A real SDK span as the parent: local, with the SDK's default trace state."""
    sampler = ALWAYS_ON if sampled else ALWAYS_OFF
    span = (
        TracerProvider(sampler=wrap(sampler)).get_tracer("t").start_span("s", kind=SpanKind.SERVER)
    )
    return set_span_in_context(span)


PARENTS: list[Context | None] = [
    None,
    Context(),
    *(_parent(remote, sampled) for remote, sampled in itertools.product((1, 0), (1, 0))),
    _local_parent(sampled=True),
    _local_parent(sampled=False),
    set_span_in_context(NonRecordingSpan(INVALID_SPAN_CONTEXT)),
    set_span_in_context(_OtherSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(1), STATE))),
    set_span_in_context(_OtherSpan(SpanContext(0x1234, 0x5678, True, TraceFlags(0)))),
    Context({"current-span": "not a span"}),
]

STATIC_CHOICES: list[Sampler] = [
    ALWAYS_ON,
    ALWAYS_OFF,
    DEFAULT_ON,
    ParentBased(ALWAYS_OFF),
    ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON, local_parent_sampled=ALWAYS_OFF),
]


class _Subclassed(StaticSampler):
    def should_sample(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return ALWAYS_OFF.should_sample(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("shortcuts", [True, False], ids=["shortcuts", "public-api-only"])
@pytest.mark.parametrize("inner", STATIC_CHOICES, ids=lambda s: s.get_description())
def test_table_wrap_decides_as_the_general_wrap(
    inner: Sampler, shortcuts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shortcuts:
        # As with another runtime context or a SpanContext of another layout: every read
        # goes through the API.
        monkeypatch.setattr("peekapi_otel.otel._sdk._context.CONTEXT_GET", None)
        monkeypatch.setattr("peekapi_otel.otel._sdk._context.TUPLE_LAYOUT", False)
    fast = wrap(inner)
    assert type(fast) is not ServerRecordOnly, "a static choice should get the table wrap"
    general = ServerRecordOnly(inner)
    cases = itertools.product(PARENTS, [*SpanKind, None], [{"http.request.method": "GET"}, None])
    for parent, kind, attributes in cases:
        for current in (False, True):
            # The parent passed in, or (as the SDK does for child spans) the current one.
            token = attach(parent) if current and parent is not None else None
            passed = None if token is not None else parent
            try:
                want = general.should_sample(passed, 0xABC, "GET /", kind, attributes)
                got = fast.should_sample(passed, 0xABC, "GET /", kind, attributes)
            finally:
                if token is not None:
                    detach(token)
            case = (parent, kind, attributes, current)
            assert got.decision is want.decision, case
            assert dict(got.attributes) == dict(want.attributes), case
            assert got.trace_state == want.trace_state, case
            assert (got.trace_state is None) == (want.trace_state is None), case
    assert fast.get_description() == general.get_description()


def test_shared_results_are_not_changed_by_the_spans_that_use_them() -> None:
    """A result without attributes is shared; spans get copies of its attributes."""
    provider = TracerProvider(sampler=wrap(DEFAULT_ON))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER):
        first = tracer.start_span("a")
        first.set_attribute("k", "v")
        second = tracer.start_span("b")
    assert dict(second.attributes or {}) == {}
    assert dict(first.attributes or {}) == {"k": "v"}


@pytest.mark.parametrize(
    "inner",
    [TraceIdRatioBased(0.5), ParentBasedTraceIdRatio(0.5), ParentBased(_Subclassed(Decision.DROP))],
    ids=lambda s: s.get_description(),
)
def test_other_samplers_get_the_general_wrap(inner: Sampler) -> None:
    assert type(wrap(inner)) is ServerRecordOnly


def test_wrap_is_idempotent() -> None:
    once = wrap(DEFAULT_ON)
    assert wrap(once) is once


def test_dropped_server_spans_are_recorded_but_not_sampled() -> None:
    provider = TracerProvider(sampler=wrap(ParentBased(ALWAYS_OFF)))
    tracer = provider.get_tracer("test")
    remote_unsampled = _parent(remote=True, sampled=False)
    server = tracer.start_span("GET /", remote_unsampled, kind=SpanKind.SERVER)
    inner = tracer.start_span("work", set_span_in_context(server), kind=SpanKind.INTERNAL)
    root_client = tracer.start_span("call", kind=SpanKind.CLIENT)
    assert server.is_recording()
    assert not server.get_span_context().trace_flags.sampled
    assert server.get_span_context().trace_state == STATE
    assert not inner.is_recording()
    assert not root_client.is_recording()
