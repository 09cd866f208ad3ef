"""What an ingest answer means, and how long to wait before the next try."""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Final

from peekapi_otel.delivery._transport import SendResult

_RETRYABLE: Final = frozenset({408, 425, 429})


class Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # 429, 5xx, timeouts, connection errors
    PAUSE = "pause"  # 401/403 and 3xx: configuration errors; keep events, stop sending
    TOO_LARGE = "too_large"  # 413: split the batch
    REJECTED = "rejected"  # other 4xx: dropping is the only way forward


def classify(result: SendResult) -> Outcome:
    status = result.status
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.OK
    if status in _RETRYABLE or status >= 500:
        return Outcome.RETRY
    if status == 413:
        return Outcome.TOO_LARGE
    if status in (401, 403) or 300 <= status < 400:
        return Outcome.PAUSE
    if 400 <= status < 500:
        return Outcome.REJECTED
    return Outcome.RETRY  # 1xx or nonsense: try again later


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
