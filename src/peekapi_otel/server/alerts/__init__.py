"""Alert rules over the stored events, evaluated by ``serve``, with notifications."""

from peekapi_otel.server.alerts._engine import AlertEngine
from peekapi_otel.server.alerts._rules import AlertsConfig, AlertsFileError, load_alerts

__all__ = ["AlertEngine", "AlertsConfig", "AlertsFileError", "load_alerts"]
