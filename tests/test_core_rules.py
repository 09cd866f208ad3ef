"""Rules for ``core`` and the schema that the code layout alone does not show."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "peekapi_otel"
CORE = sorted((SRC / "core").glob("*.py"))
#: Fields of the SDK's span, span context and status, and the API's runtime context (a
#: field of our own object, ``self._...``, is fine).
PRIVATE_OTEL = re.compile(
    r"(?<!self)\._(attributes|kind|parent|context|start_time|end_time|status|status_code"
    r"|events|dict|name|resource|links|lock|immutable)\b|_RUNTIME_CONTEXT|\bSpanContext\b.*\["
)
#: Semantic-convention keys; they are spelled in ``_schema.py`` only.
SEMCONV_KEY = re.compile(
    r"""["'](http\.(request\.method(_original)?|method|response\.status_code|status_code|route"""
    r"""|target|url)|url\.(path|query|full)|peekapi\.[a-z_]+)["']"""
)


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_only_core_and_the_schema(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    allowed = ("peekapi_otel.core.", "peekapi_otel._schema")
    outside = [n for n in imported if n.startswith("peekapi_otel") and not n.startswith(allowed)]
    assert outside == []


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_reads_spans_through_the_public_api_only(path: Path) -> None:
    found = [
        (n, line.strip())
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_OTEL.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


@pytest.mark.parametrize(
    "path",
    [
        *CORE,
        *sorted((SRC / "delivery").glob("*.py")),
        *sorted((SRC / "server").glob("*.py")),
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_attribute_keys_are_spelled_in_the_schema_only(path: Path) -> None:
    found = [
        (n, line.strip())
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SEMCONV_KEY.search(line)
    ]
    assert found == []
