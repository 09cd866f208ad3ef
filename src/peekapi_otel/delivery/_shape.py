"""Whether a spooled line is an event the ingest will take (SPEC §3 "Event")."""

from __future__ import annotations

from typing import Final

# Wire fields and the JSON types each may hold (bool is an int to Python; never here).
_REQUIRED: Final[dict[str, tuple[type, ...]]] = {
    "method": (str,),
    "path": (str,),
    "status_code": (int,),
    "response_time_ms": (int, float),
    "request_size": (int,),
    "response_size": (int,),
    "timestamp": (str,),
}
_NULLABLE: Final[dict[str, tuple[type, ...]]] = {
    "consumer_id": (str,),
    "metadata": (dict,),
}


def event_problem(obj: object) -> str | None:
    """What makes ``obj`` (a parsed JSON line) no event, or ``None`` when it is one.

    One line with the wrong shape would make the ingest refuse its whole batch, so a
    spooled line is checked before it is sent again.
    """
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    for name, types in _REQUIRED.items():
        value = obj.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, types):
            return f"field {name} missing or not {types[0].__name__}"
    for name, types in _NULLABLE.items():
        if name not in obj:
            return f"field {name} missing"
        value = obj[name]
        if value is not None and not isinstance(value, types):
            return f"field {name} not {types[0].__name__} or null"
    if obj["request_size"] < 0 or obj["response_size"] < 0:
        return "negative size"
    return None
