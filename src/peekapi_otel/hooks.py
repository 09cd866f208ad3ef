"""What the HTTP instrumentations leave out: the consumer and the body sizes.

The OpenTelemetry HTTP instrumentations record no body sizes on spans and see the
credentials only through opt-in header capture (OTEL-FACTS Q1, Q3). The code here reads
the raw request once, hashes the consumer credential and counts bytes; it sets only
``peekapi.*`` attributes, in one write per request and one per response.

* ASGI (FastAPI, Starlette, a raw ``OpenTelemetryMiddleware``): nothing to pass. Every
  ``OpenTelemetryMiddleware`` created after a PeekAPI processor wraps its app in a small
  counting layer.
* WSGI, Flask, Django: request/response hooks. Under ``opentelemetry-instrument`` the
  PeekAPI distro passes them itself; in code::

      FlaskInstrumentor().instrument_app(app, **hooks.instrumentor_kwargs("flask"))
      OpenTelemetryMiddleware(wsgi_app, **hooks.instrumentor_kwargs("wsgi"))

  A streamed response is counted as the server writes it, and a request body without
  Content-Length as the app reads it (README, "Streamed and chunked bodies on WSGI").

Pass your own hooks as keyword arguments to ``instrumentor_kwargs`` and both run (yours
second).
"""

from peekapi_otel.otel._hooks import instrumentor_kwargs

__all__ = ["instrumentor_kwargs"]
