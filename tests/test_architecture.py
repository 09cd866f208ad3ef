"""The layout's rules, checked on the source (README, "Architecture").

* Only the modules of ``otel/_sdk/`` may touch a private OpenTelemetry name or patch a
  class of an OpenTelemetry package; the rest of the code imports the package, not its
  modules.
* Imports go one way: core <- delivery <- otel; the local server uses only public names
  of core and delivery and the schema; nothing imports the server.
* No module over 400 lines of code and no class over 250 (docstrings, comments and blank
  lines not counted).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import opentelemetry.trace
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "peekapi_otel"
SEAM = "otel/_sdk/"

# Files that another change of the same redesign is splitting or moving, each with what
# still breaks a rule. Remove an entry once that change is merged; the list must end
# empty.
PENDING_AT_MERGE: dict[str, set[str]] = {}

#: The abstract methods OpenTelemetry's own base classes ask third parties to
#: implement (``BaseDistro._configure``, ``_BaseConfigurator._configure``): overriding
#: and calling them is the documented way to write a distro or configurator.
EXTENSION_POINTS = frozenset({"_configure"})

#: Modules outside the four layers: the public facade.
FACADE = frozenset({"__init__", "_version", "_schema", "testing", "hooks", "distro"})

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def _modules() -> Iterator[tuple[str, ast.Module, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(source), source


def _checked(rule: str) -> list[tuple[str, ast.Module, str]]:
    return [m for m in _modules() if rule not in PENDING_AT_MERGE.get(m[0], set())]


@cache
def _otel_private_names() -> frozenset[str]:
    """Every private name OpenTelemetry's installed packages define: attributes set on
    ``self``, functions and methods, module globals and classes."""
    # ``opentelemetry`` is a namespace package: find its folder through a module.
    root = Path(opentelemetry.trace.__file__).parent.parent
    pattern = re.compile(
        r"self\.(_[a-z]\w*)\s*[:=]|def (_[a-z]\w*)|^(_[a-zA-Z]\w*)\s*[:=]|class (_\w+)", re.M
    )
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for match in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
            names.update(g for g in match.groups() if g)
    return frozenset(n for n in names if not n.startswith("__"))


def _imported_otel_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if a.name.startswith("opentelemetry")
            )
    return names


def _private_otel_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    private = _otel_private_names()
    otel_names = _imported_otel_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                yield node.lineno, f"import from {node.module}"
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield node.lineno, f"import of {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("opentelemetry") and "._" in alias.name:
                    yield node.lineno, f"import of {alias.name}"
        elif isinstance(node, ast.Attribute):
            owner = node.value
            ours = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            if node.attr in EXTENSION_POINTS or ours or node.attr.startswith("__"):
                continue
            if node.attr in private:
                yield node.lineno, f"private OpenTelemetry name .{node.attr}"
            elif isinstance(owner, ast.Name) and owner.id in otel_names and node.attr[:1] == "_":
                yield node.lineno, f"private name {owner.id}.{node.attr}"
        # Patches: assigning to (or deleting from) a class imported from OpenTelemetry,
        # or switching an object's class.
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute):
                    base = target.value
                    if target.attr == "__class__":
                        yield node.lineno, "__class__ switch"
                    elif isinstance(base, ast.Name) and base.id in otel_names:
                        yield node.lineno, f"patch of {base.id}.{target.attr}"
        # The same names read by string: getattr(span, "_attributes"), attrgetter("_kind").
        if isinstance(node, ast.Call) and any(
            isinstance(arg, ast.Constant) and arg.value in private for arg in node.args
        ):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in ("getattr", "hasattr", "setattr", "attrgetter"):
                yield node.lineno, f"private OpenTelemetry name by string in {called}()"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in otel_names
        ):
            yield node.lineno, f"{node.func.id} on {node.args[0].id}"


def _private_problems(name: str, tree: ast.Module, source: str) -> list[str]:
    if name.startswith(SEAM):
        return []
    return [f"{name}:{line}: {what}" for line, what in _private_otel_uses(tree)]


def test_only_the_seam_touches_opentelemetry_internals() -> None:
    found = [p for module in _checked("private") for p in _private_problems(*module)]
    assert not found, "\n".join(found)


def test_the_seam_is_entered_through_its_package() -> None:
    """Its modules are its own layout: the rest of the code sees one seam."""
    inner = "peekapi_otel." + SEAM.replace("/", ".")
    found = [
        f"{name}:{line}: {module}"
        for name, tree, _ in _modules()
        if not name.startswith(SEAM)
        for line, module, names in _our_imports(tree, name)
        if module.startswith(inner)
        or (module == inner[:-1] and any(n.startswith("_") for n in names))
    ]
    assert not found, "\n".join(found)


def test_the_check_sees_private_names_and_patches() -> None:
    """The rule above would catch each kind of use it is about."""
    source = (
        "from opentelemetry.context import _RUNTIME_CONTEXT\n"
        "from opentelemetry.sdk._configuration import X\n"
        "from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware\n"
        "kind = span._kind\n"
        "raw = span._attributes._dict\n"
        "OpenTelemetryMiddleware.__init__ = init\n"
        "setattr(OpenTelemetryMiddleware, 'x', 1)\n"
        "attrs.__class__ = Guarded\n"
        "self._kind = 1\n"
        "super()._configure()\n"
        "getattr(span, '_attributes', None)\n"
        "operator.attrgetter('_kind')\n"
    )
    found = sorted(what for _, what in _private_otel_uses(ast.parse(source)))
    assert found == sorted(
        [
            "import of _RUNTIME_CONTEXT",
            "import from opentelemetry.sdk._configuration",
            "private OpenTelemetry name ._kind",
            "private OpenTelemetry name ._dict",
            "private OpenTelemetry name ._attributes",
            "patch of OpenTelemetryMiddleware.__init__",
            "setattr on OpenTelemetryMiddleware",
            "__class__ switch",
            "private OpenTelemetry name by string in getattr()",
            "private OpenTelemetry name by string in attrgetter()",
        ]
    ), found


def _layer(name: str) -> str:
    top = name.split("/")[0]
    if top.endswith(".py"):
        return "facade"
    return top


def _our_imports(tree: ast.Module, name: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, imported names) for every import of our own package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if module == "peekapi_otel" or module.startswith("peekapi_otel."):
                names = [a.name for a in node.names]
                # ``from peekapi_otel.otel import _sdk`` imports a module.
                yield node.lineno, module, names
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("peekapi_otel"):
                    yield node.lineno, alias.name, []


#: Which layers each layer may import (its own always).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "delivery": {"core"},
    "otel": {"core", "delivery"},
    "server": {"core", "delivery"},
    "facade": {"core", "delivery", "otel"},
}


def _target_layer(module: str, names: list[str]) -> list[tuple[str, str]]:
    """(layer, module or name) of each thing an import statement brings in."""
    parts = module.split(".")[1:]
    if not parts:  # from peekapi_otel import x
        return [
            (_layer(n if n in ("core", "delivery", "otel", "server") else n + ".py"), n)
            for n in names
        ]
    if len(parts) == 1 and parts[0] in ("core", "delivery", "otel", "server"):
        return [(parts[0], f"{module}.{n}") for n in names]
    return [(parts[0] if len(parts) > 1 else "facade", module)]


def _import_problems(name: str, tree: ast.Module, source: str) -> list[str]:
    found: list[str] = []
    layer = _layer(name)
    for line, module, names in _our_imports(tree, name):
        for target, what in _target_layer(module, names):
            if target == layer or (
                target == "facade" and what.split(".")[-1] in ("_version", "_schema")
            ):
                continue
            if target == "server":
                found.append(f"{name}:{line}: imports the server ({what})")
            elif target not in ALLOWED[layer]:
                found.append(f"{name}:{line}: {layer} imports {target} ({what})")
            elif layer == "server":
                private = [n for n in names if n.startswith("_")]
                if private:
                    found.append(f"{name}:{line}: server uses private {module}.{private}")
    if layer == "server":
        # Nor private attributes of the objects it gets from there.
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{name}:{node.lineno}: server reads private .{node.attr}")
    return found


def test_imports_go_one_way() -> None:
    found = [p for module in _checked("imports") for p in _import_problems(*module)]
    assert not found, "\n".join(found)


def _code_lines(source: str, tree: ast.Module) -> set[int]:
    """Line numbers that carry code: no docstring, comment or blank line."""
    docs: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docs.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines - docs


def _size_problems(name: str, tree: ast.Module, source: str) -> list[str]:
    lines = _code_lines(source, tree)
    found = []
    if len(lines) > MAX_MODULE_LINES:
        found.append(f"{name}: {len(lines)} lines of code")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            body = {n for n in lines if node.lineno <= n <= (node.end_lineno or node.lineno)}
            if len(body) > MAX_CLASS_LINES:
                found.append(f"{name}: class {node.name}: {len(body)} lines of code")
    return found


@pytest.mark.parametrize("module", _checked("size"), ids=lambda m: m[0])
def test_modules_and_classes_stay_small(module: tuple[str, ast.Module, str]) -> None:
    found = _size_problems(*module)
    assert not found, "\n".join(found)


RULES = {"private": _private_problems, "imports": _import_problems, "size": _size_problems}


def test_pending_entries_still_break_their_rule() -> None:
    """An entry whose file now keeps the rule (or is gone) must leave the list."""
    modules = {name: (name, tree, source) for name, tree, source in _modules()}
    stale = [
        f"{name} ({rule})"
        for name, rules in PENDING_AT_MERGE.items()
        for rule in sorted(rules)
        if name not in modules or not RULES[rule](*modules[name])
    ]
    assert not stale, "drop from PENDING_AT_MERGE: " + ", ".join(stale)
