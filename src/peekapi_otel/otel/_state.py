"""All process-wide state of the OpenTelemetry side, in one object with a reset.

The hooks, the ASGI layer and the credential guard run inside instrumentations that do
not know which processor a request belongs to, so the consumer rule they follow is one
per process. It is set by the first live :class:`PeekApiSpanProcessor`; a second live
processor with another rule is refused with a clear error instead of silently changing
the first one's consumers. :func:`reset` puts everything back as at import (tests, and
code that re-configures a process from scratch).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from peekapi_otel.core._guard import reset_handler
from peekapi_otel.core._options import ConsumerIdentifier
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._shutdown import SIGNALS
from peekapi_otel.otel import _sdk

if TYPE_CHECKING:
    from peekapi_otel.delivery._pipeline import Pipeline

#: Credential headers that never identify a consumer unless configured to.
SECRET_HEADERS: Final = (
    "authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
)
_PREFIXES: Final = ("http.request.header.", "http.response.header.")
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})
DEFAULT_CONSUMER_HEADERS: Final = ("x-api-key", "authorization")


def _attribute_keys(headers: Sequence[str]) -> frozenset[str]:
    names = {h.strip().lower().replace("-", "_") for h in headers if h.strip()}
    return frozenset(prefix + n for prefix in _PREFIXES for n in names)


@dataclass(frozen=True)
class RequestRule:
    """Which request headers name the consumer, and what each hook derives from that."""

    consumer_headers: tuple[str, ...]
    identify_consumer: ConsumerIdentifier | None
    #: Lower-case request header names the ASGI layer looks at, and each consumer
    #: header's rank (the first configured header present wins).
    rank: Mapping[bytes, int] = field(compare=False)
    interesting: frozenset[bytes] = field(compare=False)
    environ_keys: tuple[str, ...] = field(compare=False)
    #: Captured header attributes that are hashed, and those that are redacted.
    hashed: frozenset[str] = field(compare=False)
    redacted: frozenset[str] = field(compare=False)
    guarded: tuple[str, ...] = field(compare=False)
    guarded_set: frozenset[str] = field(compare=False)

    @staticmethod
    def build(
        consumer_headers: Sequence[str], identify_consumer: ConsumerIdentifier | None
    ) -> RequestRule:
        ranks: dict[bytes, int] = {}
        for rank, name in enumerate(consumer_headers):
            ranks.setdefault(name.lower().encode("latin-1"), rank)
        hashed = _attribute_keys(consumer_headers)
        redacted = _attribute_keys(SECRET_HEADERS) - hashed
        return RequestRule(
            consumer_headers=tuple(consumer_headers),
            identify_consumer=identify_consumer,
            rank=ranks,
            interesting=frozenset(ranks) | _FRAMING,
            environ_keys=tuple("HTTP_" + h.upper().replace("-", "_") for h in consumer_headers),
            hashed=hashed,
            redacted=redacted,
            guarded=tuple(sorted(hashed | redacted)),
            guarded_set=hashed | redacted,
        )


DEFAULT_RULE: Final = RequestRule.build(DEFAULT_CONSUMER_HEADERS, None)


class ProcessState:
    """Everything the OpenTelemetry side keeps per process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        #: The consumer rule every hook, the ASGI layer and the credential guard follow.
        self.rule: RequestRule = DEFAULT_RULE
        #: Live processors that use :attr:`rule` (they keep it from being changed).
        self.rule_holders: list[object] = []
        #: Live PeekAPI processors: while there is one, an exporter behind a
        #: ``BatchSpanProcessor`` stays quiet so that no request is counted twice.
        self.processors = 0
        #: One delivery pipeline per spool directory (endpoint and API key).
        self.pipelines: dict[str, Pipeline] = {}
        #: Our distro is the one ``opentelemetry-instrument`` loaded.
        self.distro_active = False
        #: No trace exporter is configured: an OpenTelemetry ASGI middleware built without
        #: an explicit ``exclude_spans`` leaves out its per-message spans nobody sees.
        self.cut_message_spans = False

    def adopt_rule(
        self,
        holder: object,
        consumer_headers: Sequence[str],
        identify_consumer: ConsumerIdentifier | None,
    ) -> None:
        """Make ``holder`` follow the rule these options give, or refuse.

        Raises:
            ValueError: another live processor follows a different rule.
        """
        wanted = RequestRule.build(consumer_headers, identify_consumer)
        with self.lock:
            others = [h for h in self.rule_holders if h is not holder]
            if others and wanted != self.rule:
                raise ValueError(
                    "peekapi-otel: another PeekApiSpanProcessor in this process identifies "
                    f"consumers by consumer_headers={list(self.rule.consumer_headers)!r} "
                    f"and identify_consumer={self.rule.identify_consumer!r}; the request "
                    "hooks and the credential guard are process-wide, so every processor "
                    "must use the same two options (or shut the other one down first)"
                )
            self.rule = wanted
            if holder not in others:
                self.rule_holders = [*others, holder]

    def release_rule(self, holder: object) -> None:
        with self.lock:
            self.rule_holders = [h for h in self.rule_holders if h is not holder]

    def swap_rule(self, rule: RequestRule) -> tuple[RequestRule, list[object]]:
        """Put ``rule`` in force for the whole process regardless of its holders, and
        return what to give back to :meth:`restore_rule` (``testing.capture_events``)."""
        with self.lock:
            saved = (self.rule, self.rule_holders)
            self.rule, self.rule_holders = rule, []
            return saved

    def restore_rule(self, saved: tuple[RequestRule, list[object]]) -> None:
        with self.lock:
            self.rule, self.rule_holders = saved

    def reset(self) -> None:
        """Back to the state at import: the default rule, no processors, no shared
        pipelines (they are shut down at once: what they hold is spooled, not sent), no
        patched instrumentation classes, zero stats, the default guard handler, and the
        SIGTERM handling (:data:`~peekapi_otel.delivery._shutdown.SIGNALS`) as before any
        handler of ours."""
        with self.lock:
            pipelines = list(self.pipelines.values())
            self._clear()
        for pipeline in pipelines:
            try:
                pipeline.shutdown(timeout=0)
            except Exception:  # noqa: BLE001 - a reset must not fail half-way
                pass
        _sdk.undo_patches()
        STATS.reset()
        reset_handler()
        SIGNALS.reset()


STATE: Final = ProcessState()


def reset() -> None:
    """Reset every piece of process-wide peekapi-otel state (see :meth:`ProcessState.reset`)."""
    STATE.reset()


def describe(state: ProcessState = STATE) -> dict[str, Any]:
    """A summary for debugging and tests."""
    return {
        "consumer_headers": state.rule.consumer_headers,
        "identify_consumer": state.rule.identify_consumer,
        "processors": state.processors,
        "pipelines": sorted(state.pipelines),
        "distro_active": state.distro_active,
        "cut_message_spans": state.cut_message_spans,
    }
