"""From finished request spans to acknowledged events: the pipeline facade.

The request path (:meth:`Pipeline.submit`) appends the request span's
:class:`~peekapi_otel.core._record.Record` to a deque: no lock, no I/O, no encoding (the
span itself is already gone). While the batcher is behind, a record is encoded on the
request thread instead. Two daemon threads per process do the rest:

* the batcher (:mod:`._batcher`, ``peekapi-batcher``) encodes the queued records in one
  go and cuts batches; a batch goes to the in-memory outbox (:mod:`._outbox`), or to the
  disk spool when the outbox holds ``max_buffer_size`` events or the ingest is failing;
* the sender (:mod:`._sender`, ``peekapi-sender``) POSTs outbox batches, retries with
  backoff, pauses on configuration errors (:mod:`._health`), and drains the spool
  (:mod:`._recovery`: at start-up, every 60 s, and as soon as the ingest answers again).

Fork, atexit, multiprocessing children and SIGTERM are in :mod:`._lifecycle`. A batch the
sender holds is owned by it; shutdown, a timed-out flush or a SIGTERM may take it over
and spool it, so the batch is on disk once (it may still be delivered once more if its
POST succeeds: one duplicate batch at most, which the receiver drops by trace/span id).
"""

from __future__ import annotations

import os
import threading
from typing import Final

from peekapi_otel.core._options import Options
from peekapi_otel.core._record import Record
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery import _shutdown
from peekapi_otel.delivery._batcher import Batcher
from peekapi_otel.delivery._clock import MONOTONIC, Clock
from peekapi_otel.delivery._control import Control
from peekapi_otel.delivery._health import Health
from peekapi_otel.delivery._lifecycle import Lifecycle
from peekapi_otel.delivery._outbox import Outbox
from peekapi_otel.delivery._recovery import DRAIN_INTERVAL, Recovery
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._sender import Sender, SendLoop
from peekapi_otel.delivery._shutdown import SIGNALS
from peekapi_otel.delivery._spool import Spool
from peekapi_otel.delivery._transport import HttpTransport, Transport

RECOVERY_INTERVAL: Final = DRAIN_INTERVAL
AUTH_PAUSE: Final = 300.0
WAKE_EVENTS: Final = 1024


class Pipeline:
    """Queue, batcher, sender and spool for one (endpoint, API key).

    ``recovery_interval``, ``auth_pause`` and ``clock`` are for tests only.
    """

    def __init__(
        self,
        options: Options,
        *,
        transport: Transport | None = None,
        spool: Spool | None = None,
        policy: RetryPolicy | None = None,
        start: bool = True,
        recovery_interval: float = RECOVERY_INTERVAL,
        auth_pause: float = AUTH_PAUSE,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.options = options
        # The hand-off queue holds records (and lines) only until the batcher encodes
        # them and moves them to the outbox or the spool. A disk stall (fsync under load)
        # can starve the batcher for a moment while requests keep coming, so the queue
        # gets slack beyond max_buffer_size before anything is dropped.
        self._max_queue = options.max_buffer_size * 2
        # Each wake of the background threads costs the request threads cache misses
        # and GIL hand-offs, so they wake for many batches at a time (or at
        # flush_interval); every batch still holds batch_size events.
        self._wake_at = max(options.batch_size, min(WAKE_EVENTS, options.max_buffer_size))
        self._transport: Transport = transport or HttpTransport(
            options.endpoint, options.api_key, compression=options.compression
        )
        self.spool = (
            spool if spool is not None else Spool(options.spool_dir(), options.max_storage_bytes)
        )
        self.policy = policy or RetryPolicy()
        self._recovery_interval = recovery_interval
        self._auth_pause = auth_pause
        self._clock = clock
        self._start_threads = start
        self._closed = False
        self._build()
        self._lifecycle = Lifecycle(self)
        if start:
            self._ensure_threads()

    def _build(self) -> None:
        """Fresh parts: at construction, and in a forked child (which starts empty)."""
        options, clock = self.options, self._clock
        self._pid = os.getpid()
        control = self._control = Control()
        outbox = self._outbox = Outbox(options.max_buffer_size)
        health = self._health = Health(
            options,
            self.policy,
            control,
            clock,
            pause_seconds=self._auth_pause,
            spool_dir=self.spool.directory,
        )
        sender = Sender(options, self._transport, self.policy, health, control, clock)
        recovery = self._recovery = Recovery(
            self.spool,
            sender,
            health,
            control,
            clock,
            batch_size=options.batch_size,
            interval=self._recovery_interval,
        )
        self._batcher = Batcher(options, outbox, health, recovery, self.spool, control, clock)
        self._send_loop = SendLoop(sender, health, outbox, recovery, control, clock)
        self._queue = self._batcher.queue
        self._line_of = self._batcher.line_of
        self._batcher_wake = control.batcher_wake
        self._watch_signals = True
        self._threads: list[threading.Thread] = []

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def paused(self) -> bool:
        """Sending is paused by a 3xx/401/403 answer (a configuration error)."""
        return self._health.paused(self._clock.now())

    # --- producer side (app threads) -------------------------------------------------

    def submit(self, record: Record) -> None:
        """Queue one request's record (or its line). O(1), no lock, no I/O.

        No pid check here: the ``register_at_fork`` handler resets a forked child before
        it runs any Python code, and ``getpid()`` is a system call on every request.
        """
        STATS.add_seen()
        try:
            if self._closed:
                STATS.drop("disabled", 1, "the PeekAPI exporter was shut down")
                return
            queue = self._queue
            queued = len(queue)
            if queued >= self._max_queue:
                # Only when the batcher thread is starved: it empties this queue into
                # batches (and the spool) far faster than requests fill it.
                STATS.drop("queue_full", 1, "the background batcher is not keeping up")
                return
            item: bytes | Record = record
            if queued >= self._wake_at:
                # The batcher is behind: encode here, as a record (its span's attribute
                # dict and strings, about 1.2 KB on a raw ASGI request) weighs several
                # times its line (about 300 bytes).
                line = self._line_of(record)
                if line is None:
                    return
                item = line
            queue.append(item)
            wake = self._batcher_wake
            if (queued + 1 >= self._wake_at or self._control.terminating) and not wake.is_set():
                wake.set()
            if self._watch_signals and threading.current_thread() is threading.main_thread():
                self._watch_signals = False
                _shutdown.chain_sigterm()
        finally:
            if SIGNALS.deferred:
                _shutdown.run_deferred()

    # --- threads and process events --------------------------------------------------

    def _ensure_threads(self) -> None:
        if self._threads or self._closed:
            return
        batcher = threading.Thread(target=self._batcher.run, name="peekapi-batcher", daemon=True)
        sender = threading.Thread(
            target=self._send_loop.run, args=(batcher,), name="peekapi-sender", daemon=True
        )
        self._threads = [batcher, sender]
        for thread in self._threads:
            thread.start()

    def after_fork_in_child(self) -> None:
        """Events queued in the parent belong to the parent; the child starts empty
        with its own threads, connection and spool segment."""
        if self._pid == os.getpid():
            return
        self.spool.after_fork_in_child()
        STATS.reset()
        self._build()
        if self._start_threads:
            self._ensure_threads()

    def terminate(self) -> None:
        """SIGTERM under a server that exits without atexit: memory goes to disk now."""
        if self._pid != os.getpid() or self._closed:
            return
        self._control.terminating = True
        self._control.wake_all()

    # --- flush and shutdown ------------------------------------------------------------

    def force_flush(self, timeout: float) -> bool:
        """Return once everything queued now was delivered or spooled (or ``timeout``
        passed; then what is still in memory is spooled). ``False`` on timeout."""
        try:
            if self._closed or self._pid != os.getpid() or not self._threads:
                return True
            control, outbox, now = self._control, self._outbox, self._clock.now
            deadline = now() + timeout
            with outbox.lock:
                target = outbox.request_flush()
                control.flush_deadline = max(control.flush_deadline, deadline)
            control.wake_all()
            done = outbox.wait_flushed(target, deadline, now, lambda: SIGNALS.deferred)
            if not done:
                for batch in outbox.take_all():
                    self._recovery.keep(batch)
            return done
        finally:
            if SIGNALS.deferred:
                _shutdown.run_deferred()

    def shutdown(self, timeout: float | None = None) -> None:
        """Send what can be sent within ``shutdown_timeout``; spool the rest."""
        try:
            self._shut_down(timeout)
        finally:
            STATS.summarise_drops(force=True)
            if SIGNALS.deferred:
                _shutdown.run_deferred()

    def _shut_down(self, timeout: float | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._lifecycle.forget_exit()
        if self._pid != os.getpid():
            return
        batcher, recovery, control = self._batcher, self._recovery, self._control
        if not self._threads:
            batcher.take_queue()
            recovery.keep(batcher.take_pending())
            self.spool.close_segment()
            return
        budget = self.options.shutdown_timeout if timeout is None else timeout
        now = self._clock.now
        deadline = control.deadline = now() + budget
        control.stop.set()
        control.wake_all()
        batcher_thread, sender_thread = self._threads
        batcher_thread.join(max(deadline - now(), 0.0))
        sender_thread.join(max(deadline - now(), 0.0) + 0.2)
        leftovers = self._outbox.take_all()
        if not batcher_thread.is_alive():
            batcher.take_queue()
            pending = batcher.take_pending()
            if pending:
                leftovers.append(pending)
        for batch in leftovers:
            recovery.keep(batch)
        self.spool.close_segment()
        if not sender_thread.is_alive():
            self._transport.close()


# A SIGTERM's flush waits while the main thread is in here: it may hold a lock the
# flush needs (the outbox's, the spool's, the counters').
_shutdown.defer_signals_in(Pipeline.submit, Pipeline.force_flush, Pipeline.shutdown)
