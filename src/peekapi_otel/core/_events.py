"""Re-exports of the mapping's names under their former module, for importers not yet
moved to :mod:`peekapi_otel._schema` and the ``core`` modules that define them."""

from __future__ import annotations

from peekapi_otel._schema import (
    ATTR_CONSUMER,
    ATTR_METHOD,
    ATTR_PATH,
    ATTR_QUERY,
    ATTR_REQUEST_SIZE,
    ATTR_RESPONSE_SIZE,
    MAX_CONSUMER,
    MAX_METHOD,
    MAX_PATH,
)
from peekapi_otel.core._encoder import EventEncoder, encode_batch
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.core._mapping import identify
from peekapi_otel.core._record import Record, is_request_span

__all__ = [
    "ATTR_CONSUMER",
    "ATTR_METHOD",
    "ATTR_PATH",
    "ATTR_QUERY",
    "ATTR_REQUEST_SIZE",
    "ATTR_RESPONSE_SIZE",
    "MAX_CONSUMER",
    "MAX_METHOD",
    "MAX_PATH",
    "EventEncoder",
    "Record",
    "encode_batch",
    "hash_consumer",
    "identify",
    "is_request_span",
]
