"""Time as the delivery threads see it, so tests can move it instead of sleeping."""

from __future__ import annotations

import threading
import time
from typing import Final


class Clock:
    """Monotonic seconds and interruptible waits. Tests pass one whose time moves only
    when a wait asks it to."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; ``True`` when it was set."""
        return event.wait(seconds)


MONOTONIC: Final = Clock()
