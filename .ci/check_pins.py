"""Fail unless the pins file (argv[1], .ci/oldest.txt) is the oldest set pyproject.toml
allows and this environment holds it:

* every OpenTelemetry requirement of pyproject.toml, its dependencies and every extra, is
  pinned at its floor (an extra's instrumentation left unpinned would float to whatever
  pip picks);
* the pins are one coherent set: the contrib packages (0.x: instrumentations,
  semantic conventions, util-http, distro) share one version, and so do the core
  packages (1.x: API, SDK, exporters, proto);
* every pinned requirement of the project is installed (the dev install pulls every
  extra), and every pinned package that is installed has exactly its pinned version.
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

pins = {
    canonicalize_name(name): Version(version)
    for name, version in re.findall(r"^([\w.-]+)==(\S+)$", Path(sys.argv[1]).read_text(), re.M)
}
project = tomllib.loads(PYPROJECT.read_text())["project"]
requirements = [Requirement(r) for r in project["dependencies"]]
for extra in project["optional-dependencies"].values():
    requirements += [Requirement(r) for r in extra]

problems: list[str] = []
floors: dict[str, Version] = {}
for req in requirements:
    name = canonicalize_name(req.name)
    if not name.startswith("opentelemetry-"):
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

for series, members in (
    ("contrib (0.x)", {n: v for n, v in pins.items() if v.major == 0}),
    ("core (1.x)", {n: v for n, v in pins.items() if v.major >= 1}),
):
    if len(set(members.values())) > 1:
        problems.append(f"{series} pins at several versions: {members}")

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
