"""What the pipeline facade asks of its two threads: flush, stop, terminate; and the
events that wake them."""

from __future__ import annotations

import threading
from typing import Final

#: How often the threads look again while the process is terminating or stopping.
TERMINATING_TICK: Final = 0.05


class Control:
    """Shared between the facade, the batcher and the sender; plain attributes are
    written by one side and read by the other (each read is a single load)."""

    def __init__(self) -> None:
        self.batcher_wake = threading.Event()
        self.sender_wake = threading.Event()
        self.interrupt = threading.Event()  # cuts a backoff wait short
        self.stop = threading.Event()  # shutdown: finish within ``deadline``
        #: Time by which a waiting flush wants memory delivered or on disk.
        self.flush_deadline = 0.0
        #: Time by which shutdown wants the threads done.
        self.deadline: float | None = None
        #: SIGTERM under a server that exits without atexit: memory goes to disk now.
        self.terminating = False
        #: Drain the spool at the sender's next step (start-up, overflow, the ingest
        #: answering again, a pause ending).
        self.recover_now = True

    def wake_all(self) -> None:
        self.batcher_wake.set()
        self.sender_wake.set()
        self.interrupt.set()

    def memory_deadline(self, now: float) -> float | None:
        """The time by which memory must be delivered or on disk, if any."""
        limits = [self.flush_deadline] if self.flush_deadline > now else []
        if self.deadline is not None:
            limits.append(self.deadline)
        return min(limits) if limits else None
