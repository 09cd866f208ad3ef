"""A small FastAPI app for the uvicorn tests: programmatic configure() at import."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import peekapi_otel

peekapi_otel.configure()
app = FastAPI()
FastAPIInstrumentor.instrument_app(app)


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"item": item_id, "pid": os.getpid()}
