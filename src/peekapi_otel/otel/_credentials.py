"""Keep raw credentials off spans, for every exporter.

Header capture puts ``http.request.header.<name>`` attributes on a span *after* it
started, and the SDK offers no supported point where a span is still mutable after the
instrumentation set its last attribute (OTEL-FACTS Q3). So the processor's ``on_start``
switches the span's attribute container to a subclass whose single write path hashes
consumer headers and redacts the other credential headers. Every later ``set_attribute``
or ``set_attributes`` goes through it, whichever instrumentation or user code calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from peekapi_otel.core._events import hash_consumer

_logger = logging.getLogger(__name__)

REDACTED: Final = "[REDACTED]"
SECRET_HEADERS: Final = (
    "authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
)
_PREFIXES: Final = ("http.request.header.", "http.response.header.")


def _keys(headers: Iterable[str]) -> frozenset[str]:
    names = {h.strip().lower().replace("-", "_") for h in headers if h.strip()}
    return frozenset(prefix + n for prefix in _PREFIXES for n in names)


class _Policy:
    """Which captured header attributes are hashed and which are redacted."""

    hashed: frozenset[str] = _keys(("x-api-key", "authorization"))
    redacted: frozenset[str] = _keys(SECRET_HEADERS) - hashed
    guarded: tuple[str, ...] = tuple(sorted(hashed | redacted))
    guarded_set: frozenset[str] = hashed | redacted


def set_consumer_headers(consumer_headers: Sequence[str]) -> None:
    """Consumer headers are hashed; every other secret header is redacted."""
    _Policy.hashed = _keys(consumer_headers)
    _Policy.redacted = _keys(SECRET_HEADERS) - _Policy.hashed
    _Policy.guarded = tuple(sorted(_Policy.hashed | _Policy.redacted))
    _Policy.guarded_set = _Policy.hashed | _Policy.redacted


def clean_value(key: str, value: Any) -> Any:
    if key in _Policy.hashed:
        if isinstance(value, str):
            return value if value.startswith("hash_") else hash_consumer(value)
        if isinstance(value, (list, tuple)):
            return type(value)(
                v if isinstance(v, str) and v.startswith("hash_") else hash_consumer(str(v))
                for v in value
            )
        return REDACTED
    if key in _Policy.redacted:
        return type(value)([REDACTED]) if isinstance(value, (list, tuple)) else REDACTED
    return value


class _GuardedAttributes(BoundedAttributes):
    """``BoundedAttributes`` whose one write path cleans credential headers."""

    def _setitem_locked(self, key: str, value: Any) -> None:
        if key.startswith(_PREFIXES):
            value = clean_value(key, value)
        super()._setitem_locked(key, value)


SUPPORTED: Final = hasattr(BoundedAttributes, "_setitem_locked")
if not SUPPORTED:  # pragma: no cover - depends on the installed SDK
    _logger.warning(
        "peekapi-otel: this OpenTelemetry SDK has no attribute write hook; captured "
        "credential headers are protected only by "
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
    )


def _has_plain_dict() -> bool:
    try:
        return isinstance(BoundedAttributes()._dict, dict)
    except Exception:  # noqa: BLE001 - an SDK without it uses the write guard instead
        return False


# Preferred: clean the ended span's attributes in the processor's ``_on_ending``, which
# the SDK calls for every processor after the last attribute was set and before any
# processor's ``on_end`` (so before any exporter can see the span). One dictionary scan
# per span instead of a check on every attribute write.
SCRUB_AT_END: Final = hasattr(SpanProcessor, "_on_ending") and _has_plain_dict()


def scrub(span: ReadableSpan) -> None:
    """Hash or redact credential headers on an ending span, in place."""
    raw = getattr(getattr(span, "_attributes", None), "_dict", None)
    # Most spans carry no captured credential header: one C-level test settles them.
    if type(raw) is not dict or raw.keys().isdisjoint(_Policy.guarded_set):
        return
    for key in _Policy.guarded:
        if key in raw:
            raw[key] = clean_value(key, raw[key])


def protect(span: ReadableSpan) -> None:
    """Switch ``span``'s attributes to the guarded container (O(1), no copy)."""
    attrs = getattr(span, "_attributes", None)
    if SUPPORTED and type(attrs) is BoundedAttributes:
        attrs.__class__ = _GuardedAttributes
