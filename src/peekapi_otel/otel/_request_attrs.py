"""What every request hook shares: the consumer rule's reads and the HTTP facts the
hooks need. The rule itself lives in the process state (``_state.STATE.rule``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from peekapi_otel.core._mapping import identify
from peekapi_otel.otel._state import STATE

_STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: HTTP versions whose request body must be announced by a header (HTTP/2 and 3 frame
#: bodies without one).
_BODY_NEEDS_FRAMING: Final = frozenset({"1.0", "1.1"})


def _identify(headers: Callable[[], dict[str, str]]) -> str:
    """Consumer ID from the user's ``identify_consumer`` ('' when there is none)."""
    identify_consumer = STATE.rule.identify_consumer
    if identify_consumer is None:
        return ""
    return identify(identify_consumer, headers()) or ""
