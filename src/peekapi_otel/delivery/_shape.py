"""Whether a spooled line is an event the ingest will take (SPEC §3 "Event")."""

from __future__ import annotations

import math
from typing import Final

# Required wire fields and the JSON types each may hold (bool is an int to Python, and
# never one here).
_REQUIRED: Final[dict[str, tuple[type, ...]]] = {
    "method": (str,),
    "path": (str,),
    "status_code": (int,),
    "response_time_ms": (int, float),
    "timestamp": (str,),
}
# Optional ones: absent or null stands for the default (0, or no consumer, no metadata).
_OPTIONAL: Final[dict[str, tuple[type, ...]]] = {
    "request_size": (int,),
    "response_size": (int,),
    "consumer_id": (str,),
    "metadata": (dict,),
}
_NON_NEGATIVE: Final = ("response_time_ms", "request_size", "response_size")


def event_problem(obj: object) -> str | None:
    """What makes ``obj`` (a parsed JSON line) no event, or ``None`` when it is one.

    One line with the wrong shape would make the ingest refuse its whole batch, so a
    spooled line is checked before it is sent again.
    """
    if not isinstance(obj, dict):
        return "must be an object"
    for name, types in _REQUIRED.items():
        if name not in obj:
            return f"missing field {name}"
        if not _is(obj[name], types):
            return f"{name} must be {types[0].__name__}"
    for name, types in _OPTIONAL.items():
        value = obj.get(name)
        if value is not None and not _is(value, types):
            return f"{name} must be {types[0].__name__} or null"
    for name in _NON_NEGATIVE:
        value = obj.get(name)
        if value is not None and value < 0:
            return f"{name} must be >= 0"
    return None


def _is(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) or not isinstance(value, types):
        return False
    return not isinstance(value, float) or math.isfinite(value)
