"""A minimal FastAPI app. Run it with PeekAPI analytics, no code changes
(``PEEKAPI_API_KEY=... opentelemetry-instrument uvicorn app:app``); see README.md.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # The programmatic variant: configure before the app is instrumented.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    import peekapi_otel

    peekapi_otel.configure()

app = FastAPI(title="peekapi-otel example")


class Item(BaseModel):
    name: str
    price: float = 0.0


ITEMS: dict[int, Item] = {1: Item(name="hammer", price=9.5)}


@app.get("/items/{item_id}")
def read_item(item_id: int) -> Item:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="no such item")
    return ITEMS[item_id]


@app.post("/items", status_code=201)
def create_item(item: Item) -> dict[str, int]:
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = item
    return {"id": item_id}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # ASGI apps need no PeekAPI hooks: configure() came first, so the OpenTelemetry
    # middleware counts the consumer and the body sizes itself.
    FastAPIInstrumentor.instrument_app(app)
