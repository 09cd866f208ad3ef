"""A sampler wrapper so that sampling never hides a request from PeekAPI."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from peekapi_otel.otel._sdk import parent_based_delegates, parent_position, static_decision

_DROP = Decision.DROP
_RECORD_ONLY = Decision.RECORD_ONLY
_SERVER = SpanKind.SERVER


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
    look-ups each time, each look-up five more Python calls; this asks the SDK seam once
    where the span stands (``parent_position``) and takes the decision from a table. A
    result without attributes and with the default trace state is shared between spans
    (the SDK only reads it).
    """

    def __init__(
        self, inner: Sampler, table: tuple[Decision, Decision, Decision, Decision, Decision]
    ):
        super().__init__(inner)
        #: The decision for each ``parent_position`` (root, remote sampled/not sampled,
        #: local sampled/not sampled).
        self._table = table
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
        position, state = parent_position(parent_context)
        decision = self._table[position]
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


def _table(sampler: Sampler) -> tuple[Decision, Decision, Decision, Decision, Decision] | None:
    """Root, remote sampled/not sampled, local sampled/not sampled decisions, when
    ``sampler`` takes no other input (else ``None``: it is wrapped as it is)."""
    static = static_decision(sampler)
    if static is not None:
        return (static,) * 5
    delegates = parent_based_delegates(sampler)
    if delegates is None:
        return None
    decisions = tuple(static_decision(d) for d in delegates)
    if any(d is None for d in decisions):
        return None
    return decisions  # type: ignore[return-value]  # checked: no None left


def wrap(sampler: Sampler) -> Sampler:
    """Wrap once: an already wrapped sampler is returned as it is."""
    if isinstance(sampler, ServerRecordOnly):
        return sampler
    table = _table(sampler)
    return ServerRecordOnly(sampler) if table is None else _ParentOnly(sampler, table)
