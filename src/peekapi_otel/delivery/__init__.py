"""From request records to acknowledged events: batching, sending, retry, spool, lifecycle.

What other packages may use (``otel`` builds pipelines, ``server`` inspects and drains
spools and probes an ingest); everything else here is internal to delivery.
"""

from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._retry import Outcome, RetryPolicy, classify
from peekapi_otel.delivery._shutdown import install_sigterm_handler
from peekapi_otel.delivery._spool import Spool, SpoolInfo, move_segments
from peekapi_otel.delivery._transport import HttpTransport, SendResult, Transport

__all__ = [
    "HttpTransport",
    "Outcome",
    "Pipeline",
    "RetryPolicy",
    "SendResult",
    "Spool",
    "SpoolInfo",
    "Transport",
    "classify",
    "install_sigterm_handler",
    "move_segments",
]
