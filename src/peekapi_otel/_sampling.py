"""A sampler wrapper so that sampling never hides a request from PeekAPI."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes


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
        if result.decision is Decision.DROP and kind is SpanKind.SERVER:
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"PeekApiServerRecordOnly{{{self.inner.get_description()}}}"


def wrap(sampler: Sampler) -> Sampler:
    """Wrap once: an already wrapped sampler is returned as it is."""
    return sampler if isinstance(sampler, ServerRecordOnly) else ServerRecordOnly(sampler)
