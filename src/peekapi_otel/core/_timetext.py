"""The event's two times as text: ``response_time_ms`` and ``timestamp``.

Both are written from integers and lookup tables because they are most of an event
line's cost; the results are exactly what ``json`` and ``datetime.isoformat()`` write for
:func:`millis` and the start time.
"""

from __future__ import annotations

import datetime
from typing import Final

_UTC: Final = datetime.timezone.utc
#: ".01" ... ".99" as ``repr`` writes the fraction of a float with at most two decimals.
_HUNDREDTHS: Final = tuple("." + (f"{n:02d}".rstrip("0") or "0") for n in range(100))
#: "000" ... "999": microseconds are written as two of these.
_THOUSANDS: Final = tuple(f"{n:03d}" for n in range(1000))
#: ".000" ... ".999": the milliseconds of a timestamp with its decimal point.
_DOT_THOUSANDS: Final = tuple("." + t for t in _THOUSANDS)
#: Below this many hundredths, ``repr(hundredths / 100)`` is the plain decimal.
_PLAIN_DECIMAL: Final = 10**15


def millis(ns: int) -> float:
    """A duration in ns as milliseconds with 2 decimals, half up, never negative."""
    return (ns + 5_000) // 10_000 / 100 if ns > 0 else 0.0


def timestamp(ns: int) -> str:
    """The moment ``ns`` after the epoch in ISO 8601 UTC, as ``isoformat()`` writes it."""
    seconds, rem = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, _UTC).replace(microsecond=rem // 1000)
    return moment.isoformat()


class TimesWriter:
    """Writes ``response_time_ms`` and ``timestamp`` for a request; the date and time of
    day are cached for the last second seen (requests that arrive together share it).

    Request threads call it concurrently: the cache is one (second, text) tuple, read
    and replaced in single steps, so no thread can pair one second with another's text.
    """

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def texts(self, start_ns: int, end_ns: int) -> tuple[str, str]:
        """``repr(millis(end_ns - start_ns))`` and ``timestamp(start_ns)``, the two in one
        call: they are written for every event."""
        duration = end_ns - start_ns
        if duration <= 0:
            duration_text = "0.0"
        else:
            hundredths = (duration + 5_000) // 10_000
            if hundredths < _PLAIN_DECIMAL:
                duration_text = f"{hundredths // 100}{_HUNDREDTHS[hundredths % 100]}"
            else:
                duration_text = repr(hundredths / 100)
        seconds = start_ns // 1_000_000_000
        cached, second_text = self._second
        if seconds != cached:
            moment = datetime.datetime.fromtimestamp(seconds, _UTC)
            second_text = moment.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (seconds, second_text)
        micros = start_ns // 1_000 % 1_000_000
        if not micros:  # as isoformat() writes a whole second
            return duration_text, second_text + "+00:00"
        return duration_text, (
            f"{second_text}{_DOT_THOUSANDS[micros // 1_000]}{_THOUSANDS[micros % 1_000]}+00:00"
        )
