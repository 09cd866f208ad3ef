"""The request rule every hook shares: which headers name the consumer, and how our
attributes go onto a live span."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import Span

from peekapi_otel.core._events import identify
from peekapi_otel.core._options import ConsumerIdentifier

_logger = logging.getLogger(__name__)


_logger = logging.getLogger(__name__)

_STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: HTTP versions whose request body must be announced by a header (HTTP/2 and 3 frame
#: bodies without one).
_BODY_NEEDS_FRAMING: Final = frozenset({"1.0", "1.1"})
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})


class _Config:
    """Set by the active :class:`PeekApiSpanProcessor`; read by the hooks."""

    consumer_headers: tuple[str, ...] = ("x-api-key", "authorization")
    #: Lower-case request header names the ASGI layer looks at, and each consumer
    #: header's rank (the first configured header present wins).
    rank: dict[bytes, int] = {b"x-api-key": 0, b"authorization": 1}
    interesting: frozenset[bytes] = frozenset(
        (b"content-length", b"transfer-encoding", b"x-api-key", b"authorization")
    )
    environ_keys: tuple[str, ...] = ("HTTP_X_API_KEY", "HTTP_AUTHORIZATION")
    identify_consumer: ConsumerIdentifier | None = None
    #: Set by the distro when no trace exporter is configured: an OpenTelemetry ASGI
    #: middleware built without an explicit ``exclude_spans`` leaves out its per-message
    #: ``http send``/``http receive`` spans, which nobody could see.
    cut_message_spans = False


def configure_hooks(
    consumer_headers: Sequence[str], identify_consumer: ConsumerIdentifier | None
) -> None:
    _Config.consumer_headers = tuple(consumer_headers)
    ranks: dict[bytes, int] = {}
    for rank, name in enumerate(consumer_headers):
        ranks.setdefault(name.encode("latin-1"), rank)
    _Config.rank = ranks
    _Config.interesting = frozenset(ranks) | _FRAMING
    _Config.environ_keys = tuple("HTTP_" + h.upper().replace("-", "_") for h in consumer_headers)
    _Config.identify_consumer = identify_consumer


def _identify(headers: Callable[[], dict[str, str]]) -> str:
    """Consumer ID from the user's ``identify_consumer`` ('' when there is none)."""
    identify_consumer = _Config.identify_consumer
    if identify_consumer is None:
        return ""
    return identify(identify_consumer, headers()) or ""


def _has_plain_dict() -> bool:
    try:
        probe = BoundedAttributes(immutable=False)
        return isinstance(probe._dict, dict) and all(
            hasattr(probe, name) for name in ("_lock", "_immutable", "maxlen", "max_value_len")
        )
    except Exception:  # noqa: BLE001 - another SDK: the public setter is used instead
        return False


_DIRECT: Final = _has_plain_dict()


def _put(span: Span, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """Add our attributes to a live span; the span's own dict when they went straight
    into it (else ``None``).

    ``set_attributes`` takes the span's lock and validates and copies every value, which
    costs several microseconds per call. Ours are plain str/int that need none of it, so
    on the SDK's container they go straight into its dict (under its lock) whenever the
    result is the same: the span is live and no limit applies. (A ``peekapi.*`` key
    that is there already keeps its place instead of moving to the end.)
    """
    bounded = getattr(span, "_attributes", None)
    if _DIRECT and isinstance(bounded, BoundedAttributes):
        raw = bounded._dict
        maxlen = bounded.maxlen
        if (
            not bounded._immutable
            and bounded.max_value_len is None
            and (maxlen is None or len(raw) + len(attrs) <= maxlen)
        ):
            with bounded._lock:
                raw.update(attrs)
            return raw
    span.set_attributes(attrs)
    return None
