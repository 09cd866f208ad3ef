"""Text from the network, made safe to print on a terminal or in a log line.

Paths, consumer IDs and client names come from anonymous requests: written as they are,
an ESC sequence could rewrite the terminal, BEL ring it, and a bidi control reorder what
the reader sees. Each such character is shown as a Python-style escape instead.
"""

from __future__ import annotations

import re
from typing import Final

# C0 and C1 controls, DEL, and the bidi embedding/override/isolate controls.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` or ``\\uNNNN``."""
    return _UNSAFE.sub(_escape, text)
