"""The programmatic path with a provider the app built itself.

The app sets up its own ``TracerProvider`` with a sampler that drops every new trace
(``ParentBased(TraceIdRatioBased(0))``) and a console exporter on stdout, then calls
``peekapi_otel.configure()``. Every request must still become a PeekAPI event, and no
raw credential may reach the console exporter.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import peekapi_otel
from peekapi_otel.hooks import instrumentor_kwargs

provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
trace.set_tracer_provider(provider)
peekapi_otel.configure()

app = FastAPI()


@app.get("/items/{item_id}")
def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


FastAPIInstrumentor.instrument_app(app, **instrumentor_kwargs("fastapi"))
