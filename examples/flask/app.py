"""A minimal Flask app. Run it with PeekAPI analytics, no code changes (see README.md):
``PEEKAPI_API_KEY=... opentelemetry-instrument gunicorn -w 2 -b 127.0.0.1:8000 app:app``.
"""

from __future__ import annotations

import os

from flask import Flask, abort, jsonify, request

app = Flask(__name__)
ITEMS: dict[int, dict[str, object]] = {1: {"name": "hammer", "price": 9.5}}

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # The programmatic variant: configure, then instrument with the PeekAPI hooks.
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    import peekapi_otel
    from peekapi_otel.hooks import instrumentor_kwargs

    peekapi_otel.configure()
    FlaskInstrumentor().instrument_app(app, **instrumentor_kwargs("flask"))


@app.get("/items/<int:item_id>")
def read_item(item_id: int):  # type: ignore[no-untyped-def]
    if item_id not in ITEMS:
        abort(404)
    return jsonify(ITEMS[item_id])


@app.post("/items")
def create_item():  # type: ignore[no-untyped-def]
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = request.get_json(force=True)
    return jsonify({"id": item_id}), 201


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
