"""Keep raw credentials off spans, for every exporter.

Header capture puts ``http.request.header.<name>`` attributes on a span *after* it
started, and the SDK offers no public point where a span is still mutable after the
instrumentation set its last attribute (OTEL-FACTS Q3). Two ways, both through the SDK
seam (``_sdk``), so that the guarantee holds on every SDK in the supported range:

* the SDK calls the processor as the span ends, before any ``on_end``
  (:data:`~peekapi_otel.otel._sdk.ENDING_HOOK`): :func:`scrub` cleans the ended span's
  attributes in place, one dictionary test per span;
* otherwise the processor's ``on_start`` switches the span's attribute container to one
  whose write paths clean every value (:func:`protect`), whichever instrumentation or
  user code sets it.

Consumer headers are hashed, the other credential headers redacted.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan

from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.otel import _sdk
from peekapi_otel.otel._state import SECRET_HEADERS, STATE

__all__ = ["REDACTED", "SECRET_HEADERS", "clean_value", "protect", "scrub"]

_logger = logging.getLogger(__name__)

REDACTED: Final = "[REDACTED]"
_PREFIXES: Final = ("http.request.header.", "http.response.header.")


def clean_value(key: str, value: Any) -> Any:
    """``value`` as it may stay on a span under attribute ``key``."""
    rule = STATE.rule
    if key in rule.hashed:
        if isinstance(value, str):
            return value if value.startswith("hash_") else hash_consumer(value)
        if isinstance(value, (list, tuple)):
            return type(value)(
                v if isinstance(v, str) and v.startswith("hash_") else hash_consumer(str(v))
                for v in value
            )
        return REDACTED
    if key in rule.redacted:
        return type(value)([REDACTED]) if isinstance(value, (list, tuple)) else REDACTED
    return value


def _clean_header_attribute(key: str, value: Any) -> Any:
    return clean_value(key, value) if key.startswith(_PREFIXES) else value


_sdk.set_attribute_cleaner(_clean_header_attribute)

if not (_sdk.ENDING_HOOK or _sdk.WRITE_GUARD):  # pragma: no cover - another SDK entirely
    _logger.warning(
        "peekapi-otel: this OpenTelemetry SDK has neither an ending hook nor the attribute "
        "container peekapi-otel knows; captured credential headers are protected only by "
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
    )


def scrub(span: ReadableSpan) -> None:
    """Hash or redact credential headers on an ending span, in place."""
    raw = _sdk.ending_attributes(span)
    rule = STATE.rule
    # Most spans carry no captured credential header: one C-level test settles them.
    if raw is None or raw.keys().isdisjoint(rule.guarded_set):
        return
    for key in rule.guarded:
        if key in raw:
            raw[key] = clean_value(key, raw[key])


def protect(span: Any) -> bool:
    """Clean every later attribute write on ``span`` (O(1), no copy)."""
    return _sdk.guard_attribute_writes(span)
