"""The README's first lines, as a user writes them: ``configure(api_key=...)``, then the
framework's own instrumentor with no PeekAPI arguments. Consumers and sizes must arrive.

Each case runs in its own process: ``configure()`` sets the global provider and the
Django instrumentor is a process-wide singleton.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest import Ingest
from peekapi_otel.core._hashing import hash_consumer

BODY = b'{"name":"widget","qty":3}'

CONFIGURE = """
import sys
import peekapi_otel

IDENTIFY = sys.argv[3] == "identify"
peekapi_otel.configure(
    api_key="project-key",
    endpoint=sys.argv[1],
    storage_path=sys.argv[2],
    flush_interval=0.2,
    **({"identify_consumer": lambda headers: headers.get("x-tenant")} if IDENTIFY else {}),
)
"""

FLASK = """
from flask import Flask, jsonify, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

app = Flask(__name__)

@app.post("/items/<int:item_id>")
def item(item_id):
    return jsonify(item_id=item_id, got=len(request.get_data()))

if sys.argv[4] == "app":
    FlaskInstrumentor().instrument_app(app)
else:
    import flask

    FlaskInstrumentor().instrument()
    app = flask.Flask(__name__)  # the instrumented class replaces flask.Flask
    app.add_url_rule("/items/<int:item_id>", view_func=item, methods=["POST"])

response = app.test_client().post("/items/7", data=BODY, headers=HEADERS)
"""

DJANGO = """
import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from opentelemetry.instrumentation.django import DjangoInstrumentor

def item(request, item_id):
    return JsonResponse({"item_id": item_id, "got": len(request.body)})

urlpatterns = [path("items/<int:item_id>", item)]
settings.configure(
    DEBUG=False, SECRET_KEY="tests-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
    MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, LOGGING_CONFIG=None,
)
DjangoInstrumentor().instrument()
django.setup()

from django.test import Client

response = Client().post(
    "/items/7", data=BODY, content_type="application/json",
    **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in HEADERS.items()},
)
"""

FINISH = """
from opentelemetry import trace

body = response.get_data() if hasattr(response, "get_data") else response.content
print(json.dumps({"status": response.status_code, "size": len(body)}))
assert trace.get_tracer_provider().force_flush(10_000)
"""


def _run(
    framework: str, ingest: Ingest, tmp_path: Path, identify: bool, way: str = "app"
) -> tuple[dict[str, int], dict[str, object]]:
    headers = {"x-api-key": "secret-key", "x-tenant": "acme"}
    script = "\n".join(
        [
            "import json",
            f"BODY = {BODY!r}",
            f"HEADERS = {headers!r}",
            textwrap.dedent(CONFIGURE),
            textwrap.dedent(FLASK if framework == "flask" else DJANGO),
            textwrap.dedent(FINISH),
        ]
    )
    path = tmp_path / "app.py"
    path.write_text(script)
    done = subprocess.run(
        [
            sys.executable,
            str(path),
            ingest.url,
            str(tmp_path / "spool"),
            "identify" if identify else "rule",
            way,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
    (event,) = ingest.wait_for(1, timeout=10)
    return seen, event


@pytest.mark.parametrize("identify", [False, True], ids=["default-rule", "identify_consumer"])
@pytest.mark.parametrize("framework", ["flask", "django"])
def test_configure_then_the_frameworks_own_instrumentor(
    framework: str, identify: bool, ingest: Ingest, tmp_path: Path
) -> None:
    seen, event = _run(framework, ingest, tmp_path, identify)
    assert seen["status"] == 200
    assert event["consumer_id"] == ("acme" if identify else hash_consumer("secret-key"))
    assert (event["request_size"], event["response_size"]) == (len(BODY), seen["size"])


def test_configure_then_flask_instrumentor_instrument(ingest: Ingest, tmp_path: Path) -> None:
    """``FlaskInstrumentor().instrument()`` (every Flask app built afterwards) as well."""
    seen, event = _run("flask", ingest, tmp_path, identify=False, way="instrument")
    assert event["consumer_id"] == hash_consumer("secret-key")
    assert (event["request_size"], event["response_size"]) == (len(BODY), seen["size"])
