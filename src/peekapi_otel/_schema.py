"""The PeekAPI event: its wire fields and the span attributes each field is read from.

Two tables, each the only copy in the project:

* :data:`WIRE_FIELDS`: name, JSON type, required or optional, the value an absent
  optional field stands for, and the limits. The encoder writes these fields in this
  order; the local ingest and the spool check events against them (:func:`event_problem`).
* The semantic-convention keys: for each value the mapping needs, the attribute keys to
  try, newest convention first (``OTEL_SEMCONV_STABILITY_OPT_IN`` decides which ones an
  instrumentation sets; ``http/dup`` sets both), then the ``peekapi.*`` attributes our own
  hooks add where an instrumentation has no attribute for it.

Clients other than this one send less: the ``peekapi`` Python SDK sends no ``metadata``
and, through ``client.track({...})``, no sizes; the Node SDK leaves ``consumer_id`` out of
an anonymous event. Those fields are optional, so an ingest stores such events with the
defaults below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

MAX_METHOD: Final = 16
MAX_PATH: Final = 2048
MAX_CONSUMER: Final = 256
MAX_TIMESTAMP: Final = 64
#: The largest integer a store (SQLite) keeps exactly.
MAX_INT: Final = 2**63 - 1


@dataclass(frozen=True)
class WireField:
    """One field of the event object.

    ``kind`` is ``"str"``, ``"int"`` (an integer, never a bool), ``"number"`` (a finite
    int or float) or ``"object"``. ``default`` is what an absent optional field means
    (and a ``null`` one, for a nullable field).
    ``limit`` is the longest string allowed; ``minimum`` the smallest number (integers
    are also at most :data:`MAX_INT`).
    """

    name: str
    kind: Literal["str", "int", "number", "object"]
    required: bool
    nullable: bool = False
    default: Any = None
    limit: int | None = None
    minimum: int | None = None


#: The event's fields, in the order the encoder writes them.
WIRE_FIELDS: Final = (
    WireField("method", "str", required=True, limit=MAX_METHOD),
    WireField("path", "str", required=True, limit=MAX_PATH),
    WireField("status_code", "int", required=True),
    WireField("response_time_ms", "number", required=True, minimum=0),
    WireField("request_size", "int", required=False, nullable=True, default=0, minimum=0),
    WireField("response_size", "int", required=False, nullable=True, default=0, minimum=0),
    WireField("consumer_id", "str", required=False, nullable=True, limit=MAX_CONSUMER),
    WireField("metadata", "object", required=False, nullable=True),
    WireField("timestamp", "str", required=True, limit=MAX_TIMESTAMP),
)
FIELD_NAMES: Final = tuple(field.name for field in WIRE_FIELDS)
REQUIRED_FIELDS: Final = frozenset(field.name for field in WIRE_FIELDS if field.required)


_KIND_TEXT: Final = {"int": "an integer", "number": "a finite number"}


def _type_problem(field: WireField, value: object) -> str | None:
    name = field.name
    if value is None:
        return None if field.nullable else f"{name} must not be null"
    if field.kind == "str":
        if not isinstance(value, str):
            return f"{name} must be a string"
        if field.limit is not None and len(value) > field.limit:
            return f"{name} is longer than {field.limit} characters"
        return None
    if field.kind == "object":
        return None if isinstance(value, dict) else f"{name} must be an object or null"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (field.kind == "int" and not isinstance(value, int))
        or not math.isfinite(value)
    ):
        return f"{name} must be {_KIND_TEXT[field.kind]}"
    if field.minimum is not None and value < field.minimum:
        return f"{name} must be >= {field.minimum}"
    if field.kind == "int" and value > MAX_INT:
        return f"{name} must be <= {MAX_INT}"
    return None


def event_problem(obj: object) -> str | None:
    """Why ``obj`` (a decoded JSON value) is not a PeekAPI event, or ``None`` if it is.

    Absent optional fields are allowed and unknown fields ignored.
    """
    if not isinstance(obj, dict):
        return "must be an object"
    for field in WIRE_FIELDS:
        if field.name not in obj:
            if field.required:
                return f"missing field {field.name}"
            continue
        problem = _type_problem(field, obj[field.name])
        if problem is not None:
            return problem
    return None


def with_defaults(event: dict[str, Any]) -> dict[str, Any]:
    """The wire fields of a valid event (see :func:`event_problem`) in
    :data:`WIRE_FIELDS` order, an absent or null optional field as its default; nothing
    else."""
    values = {}
    for field in WIRE_FIELDS:
        value = event.get(field.name)
        values[field.name] = field.default if value is None else value
    return values


# --- span attributes ------------------------------------------------------------------

#: Attributes our own hooks put on a span (``peekapi.*`` only).
ATTR_CONSUMER: Final = "peekapi.consumer_id"
ATTR_REQUEST_SIZE: Final = "peekapi.request_size"
ATTR_RESPONSE_SIZE: Final = "peekapi.response_size"
ATTR_METHOD: Final = "peekapi.method"
ATTR_PATH: Final = "peekapi.path"
ATTR_QUERY: Final = "peekapi.query"

#: Captured request headers are attributes under this prefix (``-`` becomes ``_``).
REQUEST_HEADER: Final = "http.request.header."

#: The request method; ``_OTHER`` when the instrumentation did not know it.
METHOD: Final = ("http.request.method", "http.method")
UNKNOWN_METHOD: Final = "_OTHER"
#: The method as received, for an ``_OTHER`` method.
METHOD_ORIGINAL: Final = ("http.request.method_original", ATTR_METHOD)
STATUS: Final = ("http.response.status_code", "http.status_code")
ROUTE: Final = "http.route"
#: Raw path, in the order tried: the path with its query beside it...
URL_PATH: Final = "url.path"
URL_QUERY: Final = "url.query"
#: ...then the old target (path and query in one; ASGI leaves the query out of it)...
TARGET: Final = "http.target"
#: ...then our WSGI hook's path and query...
OWN_PATH: Final = ATTR_PATH
OWN_QUERY: Final = ATTR_QUERY
#: ...then the full URL.
FULL_URL: Final = ("http.url", "url.full")
REQUEST_SIZE: Final = (ATTR_REQUEST_SIZE, REQUEST_HEADER + "content_length")
RESPONSE_SIZE: Final = (ATTR_RESPONSE_SIZE, "http.response.header.content_length")
