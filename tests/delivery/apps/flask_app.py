"""A small Flask app for the gunicorn tests: programmatic configure() at import."""

from __future__ import annotations

import os

from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor

import peekapi_otel

peekapi_otel.configure()
app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    return {"item": item_id, "pid": os.getpid()}
