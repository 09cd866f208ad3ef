"""Fail unless the pins file (argv[1], .ci/oldest.txt) is the oldest set pyproject.toml
allows and this environment holds it:

* every requirement of pyproject.toml, its dependencies and every extra a user installs
  (all but ``dev``, the project's own tools), is pinned at its floor: OpenTelemetry, the
  frameworks and psycopg alike (a requirement left unpinned would float to whatever pip
  picks, and its floor would go untested); a requirement whose environment marker does
  not hold for this interpreter (tomli before Python 3.11) is not installed, so not checked;
* the OpenTelemetry pins are one coherent set: the contrib packages (0.x: instrumentations,
  semantic conventions, util-http, distro) share one version, and so do the core
  packages (1.x: API, SDK, exporters, proto);
* every pinned requirement of the project is installed (the dev install pulls every
  extra), and every pinned package that is installed has exactly its pinned version.

Pins of other packages (what a floor needs to install and run: Werkzeug, httpx, ...) are
allowed; they are only checked to be installed at their pinned version.
"""

import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the project depends on tomli there
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
PROJECT_TOOLS = "dev"

pins = {
    canonicalize_name(name): Version(version)
    for name, version in re.findall(r"^([\w.-]+)==(\S+)$", Path(sys.argv[1]).read_text(), re.M)
}
project = tomllib.loads(PYPROJECT.read_text())["project"]
requirements = [Requirement(r) for r in project["dependencies"]]
for extra, reqs in project["optional-dependencies"].items():
    if extra != PROJECT_TOOLS:
        requirements += [Requirement(r) for r in reqs]

problems: list[str] = []
floors: dict[str, Version] = {}
for req in requirements:
    name = canonicalize_name(req.name)
    if name == canonicalize_name(project["name"]):
        continue  # an extra that names other extras
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    floor = [Version(s.version) for s in req.specifier if s.operator == ">="]
    if len(floor) != 1:
        problems.append(f"{req}: no single >= floor")
        continue
    if floors.setdefault(name, floor[0]) != floor[0]:
        problems.append(f"{name}: floors {floors[name]} and {floor[0]} in pyproject.toml")
    if name not in pins:
        problems.append(f"{name}: not pinned (floor {floor[0]})")
    elif pins[name] != floor[0]:
        problems.append(f"{name}: pinned {pins[name]}, floor {floor[0]}")

otel = {n: v for n, v in pins.items() if n.startswith("opentelemetry-")}
for series, members in (
    ("contrib (0.x)", {n: v for n, v in otel.items() if v.major == 0}),
    ("core (1.x)", {n: v for n, v in otel.items() if v.major >= 1}),
):
    if len(set(members.values())) > 1:
        problems.append(f"OpenTelemetry {series} pins at several versions: {members}")

installed = {
    canonicalize_name(d.metadata["Name"]): Version(d.version)
    for d in importlib.metadata.distributions()
}
for name in sorted(floors):
    if name in pins and name not in installed:
        problems.append(f"{name}: required by the project, pinned, not installed")
present = sorted((name, want, installed[name]) for name, want in pins.items() if name in installed)
for name, want, have in present:
    if want != have:
        problems.append(f"{name}: installed {have}, pinned {want}")
if not present:
    problems.append("none of the pins is installed")
if problems:
    sys.exit("not the pinned oldest set:\n  " + "\n  ".join(problems))
print("pinned set:", ", ".join(f"{name}=={have}" for name, _, have in present))
