"""What an ingest answer means, and how long to wait before the next try."""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Final

from peekapi_otel.delivery._transport import SendResult


class Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # 429, 5xx, timeouts, connection errors
    PAUSE = "pause"  # 401/403 and 3xx: configuration errors; keep events, stop sending
    TOO_LARGE = "too_large"  # 413: split the batch
    REJECTED = "rejected"  # other 4xx: dropping is the only way forward


@dataclasses.dataclass(frozen=True)
class Decision:
    """One row of the decision table: which answers, their outcome, what is done."""

    answers: str
    """The answers this row covers, as a user reads them (``"other 4xx"``)."""
    statuses: range | frozenset[int] | None
    """The status codes it covers; ``None`` for no answer at all."""
    outcome: Outcome
    action: str
    """What the exporter does with a batch that got this answer (``check`` prints it)."""


_RETRY_ACTION: Final = (
    "retried with exponential backoff (5 attempts), then kept in the disk spool and sent "
    "when the ingest answers again"
)
_PAUSE_ACTION: Final = (
    "sending pauses: events are kept in the disk spool and the ingest is probed again every "
    "few minutes until the endpoint or API key is fixed"
)

# Read top to bottom: the first row whose statuses hold the answer decides. `classify`
# and `peekapi-otel check` both read this table, so what check predicts is what the
# exporter does.
DECISION_TABLE: Final[tuple[Decision, ...]] = (
    Decision("2xx", range(200, 300), Outcome.OK, "delivered"),
    Decision("408, 425, 429", frozenset({408, 425, 429}), Outcome.RETRY, _RETRY_ACTION),
    Decision("5xx", range(500, 1000), Outcome.RETRY, _RETRY_ACTION),
    Decision(
        "413",
        frozenset({413}),
        Outcome.TOO_LARGE,
        "the batch is split and resent; a single event still too large is dropped and "
        "counted (oversize)",
    ),
    Decision("401, 403", frozenset({401, 403}), Outcome.PAUSE, _PAUSE_ACTION),
    Decision("3xx", range(300, 400), Outcome.PAUSE, f"never followed: {_PAUSE_ACTION}"),
    Decision(
        "other 4xx",
        range(400, 500),
        Outcome.REJECTED,
        "the batch is dropped and counted as rejected (logged once with the answer); it "
        "is never retried and never spooled",
    ),
    Decision("no answer (timeout, connection error)", None, Outcome.RETRY, _RETRY_ACTION),
)
_ANYTHING_ELSE: Final = Decision("1xx or an invalid status", None, Outcome.RETRY, _RETRY_ACTION)


def decide(status: int | None) -> Decision:
    """The row of :data:`DECISION_TABLE` for an answer's status (``None``: no answer)."""
    for row in DECISION_TABLE:
        if row.statuses is None:
            if status is None:
                return row
        elif status is not None and status in row.statuses:
            return row
    return _ANYTHING_ELSE


def classify(result: SendResult) -> Outcome:
    return decide(result.status).outcome


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: 1 s doubling, capped; Retry-After honoured."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 30.0
    retry_after_cap: float = 300.0
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False)

    def ceiling(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(attempt - 1, 0)))

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        ceiling = self.ceiling(attempt)
        # Full jitter, with a floor of 5 % of the ceiling so a draw near zero is no hot loop.
        return max(self.rng.uniform(0, ceiling), ceiling / 20)

    def probe_delay(self, probe: int, retry_after: float | None = None) -> float:
        """Wait before the next probe while the ingest keeps failing."""
        return self.backoff(probe + 1, retry_after)
