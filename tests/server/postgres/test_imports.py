"""psycopg stays the server's business: only ``server/db`` imports it, and neither the
instrumented app's modules nor ``serve`` on SQLite load it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "peekapi_otel"


def test_only_the_database_backends_import_psycopg() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "psycopg" for name in names):
                found.append(str(path.relative_to(SRC)))
    assert found
    assert all(name.startswith("server/db/") for name in found), found


def test_the_app_side_and_sqlite_serve_never_load_psycopg() -> None:
    code = (
        "import sys\n"
        "import peekapi_otel, peekapi_otel.distro, peekapi_otel.hooks, peekapi_otel.testing\n"
        "import peekapi_otel.server._cli, peekapi_otel.server._ingest\n"
        "peekapi_otel.server._cli.build_parser().parse_args(['serve'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
