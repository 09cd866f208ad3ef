"""PeekAPI API analytics from OpenTelemetry.

Zero code::

    PEEKAPI_API_KEY=... opentelemetry-instrument uvicorn app:app

In code::

    import peekapi_otel
    peekapi_otel.configure(api_key="...")

Each HTTP request handled (the local-root SERVER span of the OpenTelemetry HTTP server
instrumentations) becomes one PeekAPI event: method, route, status, duration, body sizes
and a hashed consumer ID. No raw credential ever reaches any exporter.
"""

from peekapi_otel._version import __version__
from peekapi_otel.core._options import Options
from peekapi_otel.core._stats import stats
from peekapi_otel.otel._configure import configure
from peekapi_otel.otel._exporter import PeekApiSpanExporter
from peekapi_otel.otel._processor import PeekApiSpanProcessor

__all__ = [
    "Options",
    "PeekApiSpanExporter",
    "PeekApiSpanProcessor",
    "__version__",
    "configure",
    "stats",
]
