"""SIGTERM ends in a normal interpreter exit, so atexit flushes what is in memory.

Servers such as uvicorn restore the original SIGTERM handler and re-raise the signal
when they finish (OTEL-FACTS Q7); with the default handler the process dies without
running atexit. Where the handler is still the default, we install one that raises
``SystemExit(143)``: no lock, no I/O in the handler itself; the flush happens in atexit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_EXIT_CODE = 128 + signal.SIGTERM


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(_EXIT_CODE)


def install_sigterm_handler() -> bool:
    """Install the handler if SIGTERM still has its default action; ``True`` if installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return False
    return True
