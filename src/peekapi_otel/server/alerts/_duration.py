"""Durations in the alerts file: ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or whole seconds."""

from __future__ import annotations

import re
from typing import Final

_PART: Final = re.compile(r"(\d+)([smhd])")
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> int:
    """Seconds in ``value``; raises ValueError saying what is accepted."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(int(n) * _UNIT[u] for n, u in parts)
    raise ValueError(f'{value!r} is not a duration (e.g. "30s", "5m", "1h30m", "2d")')


def format_duration(seconds: int) -> str:
    """The shortest spelling :func:`parse_duration` reads back as ``seconds``."""
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
