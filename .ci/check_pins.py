"""Fail unless every pinned package that is installed has exactly the pinned version."""

import importlib.metadata
import re
import sys
from pathlib import Path

pins = re.findall(r"^([\w.-]+)==(\S+)$", Path(sys.argv[1]).read_text(), re.M)
installed = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}
present = [(name, want, installed[name]) for name, want in pins if name in installed]
wrong = [p for p in present if p[1] != p[2]]
if wrong or not present:
    sys.exit(f"not the pinned set: {wrong or 'none of the pins is installed'}")
print("pinned set:", ", ".join(f"{name}=={have}" for name, _, have in present))
