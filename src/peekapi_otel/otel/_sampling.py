"""A sampler wrapper so that sampling never hides a request from PeekAPI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
)
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from peekapi_otel.otel._context import (
    CONTEXT_FIELD,
    CONTEXT_GET,
    IS_REMOTE,
    IS_VALID,
    SPAN_KEY,
    TRACE_FLAGS,
    TRACE_STATE,
    TUPLE_LAYOUT,
)

_DROP = Decision.DROP
_RECORD_ONLY = Decision.RECORD_ONLY
_SERVER = SpanKind.SERVER
_SAMPLED = TraceFlags.SAMPLED


class ServerRecordOnly(Sampler):
    """Turns the wrapped sampler's DROP into RECORD_ONLY for SERVER spans.

    RECORD_ONLY spans reach every processor's ``on_end`` but not the exporters behind a
    ``BatchSpanProcessor``/``SimpleSpanProcessor`` (they export sampled spans only), and
    the propagated ``traceparent`` keeps sampled=0. So PeekAPI counts every request while
    the user's trace volume is unchanged. The original start attributes are passed on
    (the SDK's ``AlwaysRecordSampler`` loses them; OTEL-FACTS Q5).
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is _DROP and kind is _SERVER:
            return SamplingResult(_RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"PeekApiServerRecordOnly{{{self.inner.get_description()}}}"


class _ParentOnly(ServerRecordOnly):
    """The same over a sampler whose decision depends on the parent alone.

    That is the SDK's default ``ParentBased(ALWAYS_ON)`` and the other ``parentbased_*``
    and ``always_*`` choices with static delegates. The sampler runs for every span (an
    ASGI request makes four), and the wrapped one takes three calls and two parent
    look-ups each time, each look-up five more Python calls; this reads the parent
    straight from the context and takes the decision from a table. A result without
    attributes and with the default trace state is shared between spans (the SDK only
    reads it).
    """

    def __init__(
        self, inner: Sampler, table: tuple[Decision, Decision, Decision, Decision, Decision]
    ):
        super().__init__(inner)
        (
            self._root,
            self._remote_sampled,
            self._remote_not_sampled,
            self._local_sampled,
            self._local_not_sampled,
        ) = table
        # Results without attributes (a DROP for a non-SERVER span has none either), for
        # no trace state (a root) and for the default one, the same object as the SDK's.
        self._no_state = {d: SamplingResult(d, None, None) for d in set(table)}
        self._default_state = {d: SamplingResult(d, None, DEFAULT_TRACE_STATE) for d in set(table)}

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        span: Any = None
        if CONTEXT_GET is not None:
            span = (CONTEXT_GET() if parent_context is None else parent_context).get(SPAN_KEY)
        if type(span) in CONTEXT_FIELD:
            parent = span._context
        elif span is None and CONTEXT_GET is not None:
            parent = None
        else:
            parent = get_current_span(parent_context).get_span_context()
        state: TraceState | None = None
        if TUPLE_LAYOUT and type(parent) is SpanContext:
            if parent[IS_VALID]:
                state = parent[TRACE_STATE]
                if parent[IS_REMOTE]:
                    if parent[TRACE_FLAGS] & _SAMPLED:
                        decision = self._remote_sampled
                    else:
                        decision = self._remote_not_sampled
                elif parent[TRACE_FLAGS] & _SAMPLED:
                    decision = self._local_sampled
                else:
                    decision = self._local_not_sampled
            else:
                decision = self._root
        elif parent is not None and parent.is_valid:
            state = parent.trace_state
            if parent.is_remote:
                if parent.trace_flags.sampled:
                    decision = self._remote_sampled
                else:
                    decision = self._remote_not_sampled
            elif parent.trace_flags.sampled:
                decision = self._local_sampled
            else:
                decision = self._local_not_sampled
        else:
            decision = self._root
        if decision is _DROP:
            if kind is _SERVER:
                return SamplingResult(_RECORD_ONLY, attributes, state)
            attributes = None
        if attributes is None:
            if state is None:
                return self._no_state[decision]
            if state is DEFAULT_TRACE_STATE:
                return self._default_state[decision]
        return SamplingResult(decision, attributes, state)


def _static(sampler: object) -> Decision | None:
    """The decision of an SDK ``StaticSampler`` (ALWAYS_ON/ALWAYS_OFF), else ``None``."""
    if isinstance(sampler, StaticSampler) and (
        type(sampler).should_sample is StaticSampler.should_sample
    ):
        decision = getattr(sampler, "_decision", None)
        if isinstance(decision, Decision):
            return decision
    return None


def _table(sampler: Sampler) -> tuple[Decision, Decision, Decision, Decision, Decision] | None:
    """Root, remote sampled/not sampled, local sampled/not sampled decisions, when
    ``sampler`` takes no other input (else ``None``: it is wrapped as it is)."""
    static = _static(sampler)
    if static is not None:
        return (static,) * 5
    if not isinstance(sampler, ParentBased) or (
        type(sampler).should_sample is not ParentBased.should_sample
    ):
        return None
    names = (
        "_root",
        "_remote_parent_sampled",
        "_remote_parent_not_sampled",
        "_local_parent_sampled",
        "_local_parent_not_sampled",
    )
    decisions = tuple(_static(getattr(sampler, name, None)) for name in names)
    if any(d is None for d in decisions):
        return None
    return decisions  # type: ignore[return-value]  # checked: no None left


def wrap(sampler: Sampler) -> Sampler:
    """Wrap once: an already wrapped sampler is returned as it is."""
    if isinstance(sampler, ServerRecordOnly):
        return sampler
    table = _table(sampler)
    return ServerRecordOnly(sampler) if table is None else _ParentOnly(sampler, table)
