"""What the distro adds for the frameworks whose instrumentation takes no hooks, and
the Litestar route fix; each step imports its framework only when it is installed."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Final

_logger = logging.getLogger(__name__)


def _pyramid() -> bool:
    from peekapi_otel.otel._pyramid import install_tween_on_every_app

    return install_tween_on_every_app()


def _aiohttp() -> bool:
    from peekapi_otel.otel._aiohttp import install_middleware_on_every_app

    return install_middleware_on_every_app()


#: instrumentor entry-point name -> what to do right after its ``instrument()``
AFTER_INSTRUMENT: Final[dict[str, tuple[str, str, Callable[[], bool]]]] = {
    "pyramid": ("opentelemetry.instrumentation.pyramid", "PyramidInstrumentor", _pyramid),
    "aiohttp-server": (
        "opentelemetry.instrumentation.aiohttp_server",
        "AioHttpServerInstrumentor",
        _aiohttp,
    ),
}


def after_instrument(name: str) -> None:
    step = AFTER_INSTRUMENT.get(name)
    if step is None:
        return
    try:
        step[2]()
    except Exception:  # the app still runs, with fewer PeekAPI fields
        _logger.exception("peekapi-otel could not add its %s glue", name)


def install_litestar_default() -> None:
    """Litestar's OpenTelemetry plugin is not an instrumentor: fix its default route
    extractor whenever Litestar is installed."""
    try:
        if importlib.util.find_spec("litestar") is None:
            return
        from peekapi_otel.otel._litestar import install_default_route_fix

        install_default_route_fix()
    except Exception:  # never stops auto-instrumentation
        _logger.exception("peekapi-otel could not fix Litestar's default route")
