"""One guard for every piece of our code that runs on the host's threads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from peekapi_otel.core._stats import STATS

_logger = logging.getLogger("peekapi_otel")


def _log(exc: BaseException) -> None:
    STATS.drop("internal_error", detail=f"{type(exc).__name__}: {exc}")
    STATS.once(
        f"internal:{type(exc).__name__}",
        logging.ERROR,
        "peekapi-otel hit an internal error; the request was not affected",
        exc_info=exc,
    )


class _Guard:
    """``with guard:`` swallows and counts any ``Exception`` so the host app never sees it.

    Tests replace :attr:`handler` (:func:`set_handler`) to re-raise, so bugs surface
    instead of being counted.
    """

    handler: Callable[[BaseException], None] = staticmethod(_log)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report(exc)
        return True


def report(exc: Exception) -> None:
    """What ``with guard:`` does with ``exc``, for per-span code that uses ``try`` (a
    context manager costs two Python calls even when nothing is raised)."""
    try:
        _Guard.handler(exc)
    except Exception:  # noqa: BLE001 - a failing log handler must not reach the app
        pass


guard = _Guard()


def set_handler(handler: Callable[[BaseException], None]) -> Callable[[BaseException], None]:
    """Route what the guard catches to ``handler`` (tests re-raise or collect); returns
    the previous handler."""
    previous = _Guard.handler
    _Guard.handler = staticmethod(handler)
    return previous


def reset_handler() -> None:
    """Count and log once again, as at import (part of the process-state reset)."""
    _Guard.handler = staticmethod(_log)
