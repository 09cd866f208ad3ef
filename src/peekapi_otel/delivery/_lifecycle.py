"""A pipeline's part in the process's life: fork, atexit, multiprocessing children and
SIGTERM. Everything is registered through weak references, so a pipeline that is gone
is not kept alive (nor flushed) by the process."""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util  # stdlib and light; needed for os._exit() children
import os
import weakref
from collections.abc import Callable
from typing import Protocol

from peekapi_otel.delivery import _shutdown

_logger = logging.getLogger(__name__)


class Managed(Protocol):
    """What the lifecycle needs from a pipeline."""

    @property
    def closed(self) -> bool: ...

    def after_fork_in_child(self) -> None: ...

    def terminate(self) -> None: ...

    def shutdown(self, timeout: float | None = None) -> None: ...


class Lifecycle:
    """Registers ``pipeline`` for the process events that must end in a flush."""

    def __init__(self, pipeline: Managed) -> None:
        ref = weakref.ref(pipeline)
        self._pipeline = ref

        def after_fork() -> None:
            target = ref()
            if target is not None:
                target.after_fork_in_child()

        os.register_at_fork(after_in_child=after_fork)
        # multiprocessing ends a forked child with os._exit(): atexit never runs there,
        # but its own finalizers do.
        multiprocessing.util.register_after_fork(self, Lifecycle._finalize_in_child)
        _shutdown.add_listener(pipeline)
        self._atexit = _guarded(self.exit_flush)
        atexit.register(self._atexit)

    def _finalize_in_child(self) -> None:
        multiprocessing.util.Finalize(self, self.exit_flush, exitpriority=10)

    def exit_flush(self) -> None:
        """Interpreter exit: flush, then let a SIGTERM held for this flush end the process."""
        pipeline = self._pipeline()
        if pipeline is None:
            return
        _shutdown.set_exiting()
        try:
            pipeline.shutdown()
        finally:
            _shutdown.release_held_signal()

    def forget_exit(self) -> None:
        """The pipeline was shut down: nothing to do at exit any more."""
        atexit.unregister(self._atexit)


def _guarded(call: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            call()
        except Exception:  # never fail interpreter exit
            _logger.exception("peekapi-otel shutdown error")

    return run
