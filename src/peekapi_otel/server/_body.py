"""Decoding an ingest body: strict JSON whose every value SQLite can store.

``json.loads`` alone accepts what the store then cannot take (integers of 2**63 and
more, lone surrogates) and fails with exceptions other than ``JSONDecodeError`` on deep
nesting and very long integers. Each of those becomes one :class:`MalformedBody` here,
which the ingest answers with 400 and the reason.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, NoReturn

MAX_DEPTH: Final = 32
"""Deepest nesting accepted; an event is 3 levels deep (batch, event, metadata)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class MalformedBody(ValueError):
    """The body is not JSON the ingest can store; the message says why."""


def _refuse_constant(name: str) -> NoReturn:
    raise MalformedBody(f"malformed JSON: {name} is not a JSON value")


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_value(value: Any, where: str) -> None:
    """Walk ``value`` without recursion; raise on the first value that cannot be stored."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedBody(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if not _is_unicode(item):
                raise MalformedBody(f"{where}: a string contains a lone surrogate")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT64_MIN <= item <= _INT64_MAX:
                raise MalformedBody(f"{where}: an integer is outside the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise MalformedBody(f"{where}: a number is too large")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_unicode(key):
                    raise MalformedBody(f"{where}: a key contains a lone surrogate")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def decode(body: bytes) -> Any:
    """The decoded body; raises :class:`MalformedBody`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})"
        raise MalformedBody(reason) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise MalformedBody(f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer over sys.get_int_max_str_digits() digits
        if isinstance(exc, MalformedBody):
            raise
        raise MalformedBody("malformed JSON: a number has too many digits") from None
    if isinstance(value, list):
        for index, event in enumerate(value):
            _check_value(event, f"event {index}")
    else:
        _check_value(value, "body")
    return value
