"""Zero-code entry points for ``opentelemetry-instrument``.

* ``opentelemetry_distro`` ``peekapi`` (:class:`PeekApiDistro`): safe defaults with
  ``setdefault`` only, and the PeekAPI hooks passed to the FastAPI, Starlette, Flask and
  Django instrumentors.
* ``opentelemetry_configurator`` ``peekapi`` (:class:`PeekApiConfigurator`): the SDK's
  own set-up plus the PeekAPI processor and the record-all sampler wrapper.
* ``opentelemetry_pre_instrument`` ``peekapi`` (:func:`pre_instrument`): when another
  distro or configurator won, attach the processor to the provider that exists (once)
  and chain our hooks into the instrumentors.

Nothing here may raise: an exception in a distro, configurator or hook switches off all
auto-instrumentation of the process (OTEL-FACTS Q4).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk.trace import TracerProvider

from peekapi_otel.delivery._shutdown import install_sigterm_handler
from peekapi_otel.otel._configure import SANITIZE, SANITIZED, attach, merge_env_list
from peekapi_otel.otel._framework_defaults import after_instrument, install_litestar_default
from peekapi_otel.otel._instrumentors import (
    INSTRUMENTORS,
    chain_glue_into_instrumentors,
    chain_hooks_into_instrumentors,
    traces_go_nowhere,
    with_hooks,
)
from peekapi_otel.otel._sdk import SDKConfigurator
from peekapi_otel.otel._state import STATE

_logger = logging.getLogger(__name__)


def _defaults() -> None:
    # Without opentelemetry-distro the SDK default exporter is already none; set it
    # explicitly so another distro installed beside ours cannot default to a missing
    # OTLP exporter, which would fail the whole start-up (OTEL-FACTS Q4).
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
    os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
    os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
    merge_env_list(SANITIZE, list(SANITIZED))


class PeekApiDistro(BaseDistro):
    """Selected with ``OTEL_PYTHON_DISTRO=peekapi`` (or when it is the only distro)."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            _defaults()
            STATE.distro_active = True
            # FastAPI, Starlette and hand-built ASGI middlewares: no per-message spans
            # when nobody can see them.
            STATE.cut_message_spans = traces_go_nowhere()
            install_litestar_default()
        except Exception:  # must never stop auto-instrumentation
            _logger.exception("peekapi-otel distro could not set its defaults")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        try:
            if entry_point.name in INSTRUMENTORS:
                kwargs = with_hooks(entry_point.name, kwargs)
        except Exception:  # fall back to the plain instrumentor
            _logger.exception("peekapi-otel could not add its hooks to %s", entry_point.name)
        try:
            entry_point.load()().instrument(**kwargs)
        except Exception:  # one broken instrumentor must not stop the rest
            _logger.exception("Instrumenting of %s failed", entry_point.name)
            return
        after_instrument(entry_point.name)


class PeekApiConfigurator(SDKConfigurator):
    """The SDK's own configuration plus the PeekAPI processor and sampler wrapper."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            super()._configure(**kwargs)
        except Exception as exc:  # e.g. an exporter named in OTEL_* is missing
            # A configuration problem of the user's, not a bug: one clear line (the
            # traceback only at DEBUG). Upstream this error switches off all instrumentation.
            _logger.error(
                "peekapi-otel: the OpenTelemetry SDK set-up failed (%s: %s); check "
                "OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER and "
                "install the exporters they name. Your other exporters are not running; "
                "PeekAPI still counts requests",
                type(exc).__name__,
                exc,
            )
            _logger.debug("OpenTelemetry SDK set-up failure", exc_info=True)
        _attach_to_global()


def _attach_to_global() -> None:
    try:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
            provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            attach(provider)
        else:
            _logger.warning(
                "peekapi-otel: the global TracerProvider is not the OpenTelemetry SDK's "
                "(%s); PeekAPI cannot see requests",
                type(provider).__name__,
            )
        install_sigterm_handler()
    except Exception:  # must never stop auto-instrumentation
        _logger.exception("peekapi-otel could not attach to the TracerProvider")


def pre_instrument(**kwargs: Any) -> None:
    """``opentelemetry_pre_instrument`` hook: runs whichever distro and configurator won."""
    try:
        if not STATE.distro_active:
            merge_env_list(SANITIZE, list(SANITIZED))
            STATE.cut_message_spans = traces_go_nowhere()
            chain_hooks_into_instrumentors(INSTRUMENTORS)
            chain_glue_into_instrumentors()
            install_litestar_default()
    except Exception:  # must never stop auto-instrumentation
        _logger.exception("peekapi-otel pre-instrument hook failed")
    _attach_to_global()
