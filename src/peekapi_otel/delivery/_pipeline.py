"""From finished request spans to acknowledged events.

The request path (``submit``) appends the span's record (its attribute dict, context and
times, see :func:`record`) to a deque: no lock, no I/O, no encoding, and the span itself
is freed at once (holding spans makes the garbage collector run). A span whose event
needs more than its record, and every span while the batcher is behind, is encoded on
the request thread instead. Two daemon threads per process do the rest:

* the *batcher* encodes the queued records in one go (the encoder stays in the CPU's
  caches, where one encode per request between two requests' worth of other code does
  not) and cuts batches; a batch goes to the in-memory outbox, or to the disk spool when
  the outbox holds ``max_buffer_size`` events or the ingest is failing;
* the *sender* (``peekapi-sender``) POSTs outbox batches, retries with backoff, and drains
  the spool (at start-up, every 60 s, and as soon as the ingest answers again).

A batch the sender holds is *owned* by it (``_inflight``). Shutdown, a timed-out flush or
a SIGTERM may take it over and spool it; the sender then no longer spools it itself, so
the batch is on disk once (it may still be delivered once more if its POST succeeds: one
duplicate batch at most, which the receiver drops by trace/span id).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan

from peekapi_otel.core._events import EventEncoder, Record, encode_batch, record
from peekapi_otel.core._options import Options
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery import _shutdown
from peekapi_otel.delivery._retry import Outcome, RetryPolicy, classify
from peekapi_otel.delivery._spool import Claim, Spool
from peekapi_otel.delivery._transport import HttpTransport, SendResult, Transport

_logger = logging.getLogger(__name__)

RECOVERY_INTERVAL: Final = 60.0
AUTH_PAUSE: Final = 300.0
_TERMINATING_TICK: Final = 0.05
WAKE_EVENTS: Final = 1024


class Pipeline:
    """Queue, batcher, sender and spool for one (endpoint, API key).

    ``recovery_interval`` and ``auth_pause`` are for tests only.
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
        # Past the wake threshold the batcher is behind: encode on the request thread,
        # as a record (its attribute dict) weighs several times its line.
        self._records_max = self._wake_at
        self._batch_size = options.batch_size
        self._encoder = EventEncoder(
            path_source=options.path_source,
            collect_query_string=options.collect_query_string,
            consumer_headers=options.consumer_headers,
            metadata=options.metadata,
            identify_consumer=options.identify_consumer,
            max_event_bytes=options.max_event_bytes,
        )
        self._transport: Transport = transport or HttpTransport(
            options.endpoint, options.api_key, compression=options.compression
        )
        self.spool = (
            spool if spool is not None else Spool(options.spool_dir(), options.max_storage_bytes)
        )
        self.policy = policy or RetryPolicy()
        self._recovery_interval = recovery_interval
        self._auth_pause = auth_pause
        self._start_threads = start
        self._closed = False
        self._init_state()
        weak = weakref.WeakMethod(self._after_fork_in_child)

        def after_fork() -> None:
            method = weak()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=after_fork)
        _register_multiprocessing_finalizer(self)
        _shutdown.add_listener(self._on_terminate)
        self._atexit = _weak_call(weakref.WeakMethod(self._exit_flush))
        atexit.register(self._atexit)
        if start:
            self._ensure_threads()

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[bytes | Record] = deque()
        self._pending: list[bytes] = []  # batcher thread only
        self._outbox: deque[list[bytes]] = deque()
        self._outbox_events = 0
        self._inflight: list[bytes] | None = None
        # Lines of batches that were taken over (and spooled) while their POST went on,
        # and that POST was acknowledged: recovery in this process skips them on disk.
        self._delivered_on_disk: set[bytes] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._batcher_wake = threading.Event()
        self._sender_wake = threading.Event()
        self._interrupt = threading.Event()  # cuts a backoff wait short
        self._stop = threading.Event()
        self._flush_requests = 0
        self._flushed = 0
        self._flush_deadline = 0.0
        self._deadline: float | None = None
        self._terminating = False
        self._spooled_here = False  # this process put events on disk since it started
        self._watch_signals = True
        self._healthy = True
        self._paused_until = 0.0
        self._next_probe = 0.0
        self._probe_attempt = 0
        self._next_recovery = 0.0
        self._recover_now = True  # recovery starts with the sender thread
        self._threads: list[threading.Thread] = []

    @property
    def closed(self) -> bool:
        return self._closed

    # --- producer side (app threads) -------------------------------------------------

    def submit(self, span: ReadableSpan) -> None:
        """Queue one request span's record (or its line). O(1), no lock, no I/O.

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
            item: bytes | Record | None = None
            if queued < self._records_max:
                item = record(span)
            if item is None:
                item = self._encode_one(span)
                if item is None:
                    return
            queue.append(item)
            if (queued + 1 >= self._wake_at or self._terminating) and (
                not self._batcher_wake.is_set()
            ):
                self._batcher_wake.set()
            if self._watch_signals and threading.current_thread() is threading.main_thread():
                self._watch_signals = False
                _shutdown.chain_sigterm()
        finally:
            if _shutdown.deferred:
                _shutdown.run_deferred()

    # --- threads ---------------------------------------------------------------------

    def _ensure_threads(self) -> None:
        if self._threads or self._closed:
            return
        self._threads = [
            threading.Thread(target=self._batcher_loop, name="peekapi-batcher", daemon=True),
            threading.Thread(target=self._sender_loop, name="peekapi-sender", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _after_fork_in_child(self) -> None:
        # Events queued in the parent belong to the parent; the child starts empty with
        # its own threads, connection and spool segment.
        if self._pid == os.getpid():
            return
        if isinstance(self._transport, HttpTransport):
            self._transport.forget()
        self.spool.after_fork_in_child()
        STATS.reset()
        self._init_state()
        if self._start_threads:
            self._ensure_threads()

    def _after_fork_in_multiprocessing_child(self) -> None:
        # multiprocessing ends a forked child with os._exit(): atexit never runs there,
        # but its own finalizers do.
        import multiprocessing.util

        multiprocessing.util.Finalize(self, self._exit_flush, exitpriority=10)

    def _on_terminate(self) -> None:
        """SIGTERM under a server that exits without atexit: memory goes to disk now."""
        if self._pid != os.getpid() or self._closed:
            return
        self._terminating = True
        self._interrupt.set()
        self._batcher_wake.set()
        self._sender_wake.set()

    # --- batcher -----------------------------------------------------------------------

    def _batcher_loop(self) -> None:
        interval = self.options.flush_interval
        next_flush = time.monotonic() + interval
        while True:
            self._batcher_wake.clear()
            stopping = self._stop.is_set()
            try:
                with self._lock:
                    flush_to = self._flush_requests
                now = time.monotonic()
                terminating = self._terminating
                due = now >= next_flush or flush_to != self._flushed or stopping or terminating
                self._take_queue()
                self._cut_batches(partial=due)
                if terminating:
                    self._spill_memory()
                if due and now >= next_flush:
                    next_flush = now + interval + random.uniform(0, interval * 0.1)
                    self.spool.close_segment(idle_for=interval)
                if flush_to != self._flushed:
                    with self._lock:
                        self._flushed = flush_to
                        self._changed.notify_all()
            except Exception:  # the thread must survive anything
                _logger.exception("peekapi-otel batcher error")
            if stopping:
                return
            wait = max(next_flush - time.monotonic(), 0.0)
            if self._terminating:
                wait = min(wait, _TERMINATING_TICK)
            self._batcher_wake.wait(wait)

    def _take_queue(self) -> None:
        queue, pending = self._queue, self._pending
        pending.extend(self._lines([queue.popleft() for _ in range(len(queue))]))

    def _lines(self, items: list[bytes | Record]) -> list[bytes]:
        """Event lines for queued items; a record that cannot be encoded is counted."""
        encode = self._encoder.encode_record
        lines: list[bytes] = []
        for item in items:
            if isinstance(item, bytes):
                lines.append(item)
                continue
            try:
                line = encode(item)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                self._drop_unencodable(exc)
                continue
            if line is None:
                self._drop_oversize()
            else:
                lines.append(line)
        return lines

    def _encode_one(self, span: ReadableSpan) -> bytes | None:
        """The span's event line; a span that cannot be encoded is counted, not sent."""
        try:
            line = self._encoder.encode(span)
        except Exception as exc:  # noqa: BLE001 - one bad span must not reach the app
            self._drop_unencodable(exc)
            return None
        if line is None:
            self._drop_oversize()
        return line

    @staticmethod
    def _drop_unencodable(exc: Exception) -> None:
        STATS.drop("internal_error", 1, f"could not convert a span: {exc!r}")

    def _drop_oversize(self) -> None:
        STATS.drop("oversize", 1, f"event over max_event_bytes={self.options.max_event_bytes}")

    def _cut_batches(self, partial: bool) -> None:
        size = self.options.batch_size
        pending = self._pending
        start = 0
        while len(pending) - start >= size or (partial and start < len(pending)):
            self._route(pending[start : start + size])
            start += size
        del pending[:start]

    def _route(self, batch: list[bytes]) -> None:
        """Outbox when the ingest is healthy and there is room; otherwise the spool."""
        usable = self.spool.usable
        with self._lock:
            room = self._outbox_events + len(batch) <= self.options.max_buffer_size
            healthy = (
                self._healthy and self._paused_until <= time.monotonic() and not self._terminating
            )
            if room and (healthy or not usable):
                self._outbox.append(batch)
                self._outbox_events += len(batch)
                self._sender_wake.set()
                return
            if healthy:
                self._recover_now = True  # overflow: drain it once the outbox is empty
        self._spool(batch)

    def _spool(self, batch: list[bytes]) -> None:
        written = self.spool.write(batch)
        if written:
            self._spooled_here = True
            STATS.add("spooled", written)

    def _spill_memory(self) -> None:
        """Outbox and the sender's batch to disk, make the segment claimable, and have
        the sender send it from there."""
        for batch in self._take_memory():
            self._spool(batch)
        self.spool.close_segment()
        self._recover_now = True
        self._sender_wake.set()

    def _take_memory(self) -> list[list[bytes]]:
        with self._lock:
            batches = list(self._outbox)
            self._outbox.clear()
            self._outbox_events = 0
            if self._inflight is not None:
                batches.append(self._inflight)
                self._inflight = None  # the sender no longer owns it
            self._changed.notify_all()
        return batches

    # --- sender ------------------------------------------------------------------------

    def _sender_loop(self) -> None:
        batcher = self._threads[0]
        while True:
            self._sender_wake.clear()
            try:
                busy = self._sender_step()
            except Exception:  # the thread must survive anything
                _logger.exception("peekapi-otel sender error")
                busy = False
                self._stop.wait(1.0)
            if self._stop.is_set():
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return
                if not busy and not self._outbox and not batcher.is_alive():
                    return
            if not busy:
                self._sender_wake.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        if self._stop.is_set() or self._terminating:
            return _TERMINATING_TICK
        now = time.monotonic()
        if self._paused_until > now:
            target = self._paused_until
        elif not self._healthy and self._next_probe > now:
            target = min(self._next_probe, self._next_recovery)
        else:
            target = self._next_recovery
        return min(max(target - now, _TERMINATING_TICK), 5.0)

    def _sender_step(self) -> bool:
        """Do one unit of work; ``False`` when there was nothing to do."""
        batch = self._take()
        if batch is not None:
            self._handle_live(batch)
            return True
        now = time.monotonic()
        if self._paused_until > now or (self._stop.is_set() and not self._may_recover()):
            return False
        if not self._healthy:
            if now < self._next_probe:
                return False
            return self._recover()  # probe with a spooled batch
        if self._recover_now or self._terminating or now >= self._next_recovery:
            return self._recover()
        return False

    def _handle_live(self, batch: list[bytes]) -> None:
        now = time.monotonic()
        hold = (
            self._paused_until > now
            or self._terminating
            or (not self._healthy and (self._stop.is_set() or now < self._next_probe))
        )
        # While the ingest keeps failing, batches go to disk; one probe per backoff step.
        left = batch if hold else self._send(batch, recovered=False)
        with self._lock:
            # Spooled under the lock: a flush waiting for ``_inflight`` must find it on
            # disk, and shutdown must not take over a batch that is being spooled.
            if self._inflight is batch:
                if left:
                    self._spool(left)
            elif not left:
                # Taken over and spooled (SIGTERM, a timed-out flush), then delivered
                # after all: do not send it again from disk.
                self._delivered_on_disk.update(batch)
            self._inflight = None
            if not self._outbox:
                # Only a flush waits here, and only for an empty outbox: no wake-up of
                # the flushing thread for every batch.
                self._changed.notify_all()

    def _take(self) -> list[bytes] | None:
        with self._lock:
            if not self._outbox:
                return None
            batch = self._outbox.popleft()
            self._outbox_events -= len(batch)
            self._inflight = batch
            return batch

    def _recover(self) -> bool:
        """Drain spooled segments while the ingest answers; live batches go first."""
        self._recover_now = False
        self._next_recovery = time.monotonic() + self._recovery_interval
        self.spool.close_segment()
        claim = self.spool.claim()
        if claim is None:
            return False
        try:
            while claim.remaining and self._may_recover():
                live = self._take()
                if live is not None:
                    self._handle_live(live)
                    continue
                now = time.monotonic()
                if self._paused_until > now or (not self._healthy and now < self._next_probe):
                    return True
                if not self._send_claimed(claim):
                    return True
        finally:
            claim.release()
        self._recover_now = True  # more segments may wait: keep draining at full speed
        return True

    def _may_recover(self) -> bool:
        """At shutdown, recovery goes on only when this process spooled events (an
        outage, a burst over ``max_buffer_size``, SIGTERM spilling memory), only while
        the ingest answers, and only within the deadline: what it spooled is sent now
        rather than by the next process."""
        if not self._stop.is_set():
            return True
        return (self._terminating or self._spooled_here) and (
            self._deadline is None or time.monotonic() < self._deadline - 0.1
        )

    def _send_claimed(self, claim: Claim) -> bool:
        """Send the claim's next batch; ``False`` when it must wait for a later drain."""
        batch = claim.batch(self.options.batch_size)
        todo = batch
        delivered = self._delivered_on_disk
        if delivered:
            todo = [line for line in batch if line not in delivered]
        left = self._send(todo, recovered=True) if todo else []
        if left is todo:
            return False
        if left:
            self._spool(left)  # a split batch partly sent: the rest waits in a new segment
        if delivered:
            delivered.difference_update(batch)
        claim.ack(len(batch))
        return True

    def _send(self, batch: list[bytes], *, recovered: bool) -> list[bytes]:
        """POST one batch with retries; returns what must be kept (``batch`` itself when
        nothing was done with it, empty when it was delivered or dropped for good)."""
        policy = self.policy
        attempts = policy.attempts if self._healthy else 1
        attempt = 0
        while True:
            attempt += 1
            result = self._post(batch)
            outcome = classify(result)
            if outcome is Outcome.OK:
                self._mark_healthy()
                STATS.add("sent", len(batch))
                STATS.add("batches_sent")
                if recovered:
                    STATS.add("recovered", len(batch))
                if self.options.debug:
                    _logger.info("peekapi-otel sent %d events", len(batch))
                return []
            if outcome is Outcome.TOO_LARGE:
                return self._split(batch, recovered=recovered)
            if outcome is Outcome.REJECTED:
                STATS.drop(
                    "rejected",
                    len(batch),
                    f"ingest answered {result.status}: {result.excerpt.strip()[:200]!r}",
                )
                self._mark_healthy()
                return []
            if outcome is Outcome.PAUSE:
                self._pause(result)
                return batch
            self._report_failure(result)
            if attempt >= attempts:
                self._mark_failing(result)
                return batch
            if self._give_up_waiting(policy.backoff(attempt, result.retry_after)):
                return batch
            STATS.add("retried", len(batch))

    def _split(self, batch: list[bytes], *, recovered: bool) -> list[bytes]:
        if len(batch) == 1:
            STATS.drop("oversize", 1, "the ingest answered 413 for a single event")
            return []
        half = len(batch) // 2
        first, second = batch[:half], batch[half:]
        left = self._send(first, recovered=recovered)
        if left is first:
            return batch  # nothing got through: keep the batch whole
        return left + self._send(second, recovered=recovered)

    def _post(self, batch: list[bytes]) -> SendResult:
        timeout = self.options.timeout
        limit = self._hurry_until()
        if limit is not None:
            timeout = max(min(timeout, limit - time.monotonic()), 0.05)
        try:
            return self._transport.send(encode_batch(batch), timeout)
        except Exception as exc:  # noqa: BLE001 - transports must not kill the sender
            return SendResult(error=f"{type(exc).__name__}: {exc}")

    def _hurry_until(self) -> float | None:
        """The time by which memory must be delivered or on disk, if any."""
        limits = [self._flush_deadline] if self._flush_deadline > time.monotonic() else []
        if self._deadline is not None:
            limits.append(self._deadline)
        return min(limits) if limits else None

    def _give_up_waiting(self, seconds: float) -> bool:
        """Sleep ``seconds`` before a retry; ``True`` to give up and keep the batch on
        disk instead (shutdown, a flush deadline or SIGTERM would come first)."""
        end = time.monotonic() + seconds
        while True:
            if self._terminating:
                return True
            limit = self._hurry_until()
            if limit is not None and end > limit:
                return True
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            self._interrupt.wait(remaining)
            self._interrupt.clear()

    # --- health --------------------------------------------------------------------

    def _mark_healthy(self) -> None:
        if not self._healthy or self._paused_until:
            STATS.forget("failing")
            STATS.forget("paused")
            _logger.warning("peekapi-otel: the ingest answers again; sending spooled events")
            self._recover_now = True
            self._sender_wake.set()
        self._healthy = True
        self._paused_until = 0.0
        self._probe_attempt = 0

    def _mark_failing(self, result: SendResult) -> None:
        self._healthy = False
        self._probe_attempt += 1
        self._next_probe = time.monotonic() + self.policy.probe_delay(
            self._probe_attempt, result.retry_after
        )

    def _pause(self, result: SendResult) -> None:
        self._paused_until = time.monotonic() + self._auth_pause
        self._recover_now = True  # probe with a spooled batch when the pause ends
        if result.status is not None and 300 <= result.status < 400:
            what = (
                f"the ingest answered {result.status} (redirect to {result.location!r}); "
                "redirects are never followed: set PEEKAPI_ENDPOINT to the final URL"
            )
        else:
            what = f"the ingest rejected the API key (HTTP {result.status}); check PEEKAPI_API_KEY"
        if STATS.once(
            "paused",
            logging.ERROR,
            "peekapi-otel: %s. Events are kept on disk and sending is retried every %d s",
            what,
            int(self._auth_pause),
        ):
            self._call_on_error(what)

    def _report_failure(self, result: SendResult) -> None:
        what = f"HTTP {result.status}" if result.status is not None else result.error
        if STATS.once(
            "failing",
            logging.WARNING,
            "peekapi-otel: sending to %s failed (%s); retrying with backoff, events are "
            "kept on disk meanwhile",
            self.options.endpoint,
            what,
        ):
            self._call_on_error(f"PeekAPI send failed: {what}")

    def _call_on_error(self, message: str) -> None:
        callback = self.options.on_error
        if callback is not None:
            try:
                callback(RuntimeError(message))
            except Exception:  # noqa: BLE001 - a failing user callback changes nothing
                pass

    # --- flush and shutdown ------------------------------------------------------------

    def force_flush(self, timeout: float) -> bool:
        """Return once everything queued now was delivered or spooled (or ``timeout``
        passed; then what is still in memory is spooled). ``False`` on timeout."""
        try:
            if self._closed or self._pid != os.getpid() or not self._threads:
                return True
            deadline = time.monotonic() + timeout
            with self._lock:
                self._flush_requests += 1
                target = self._flush_requests
                self._flush_deadline = max(self._flush_deadline, deadline)
            self._batcher_wake.set()
            self._sender_wake.set()
            self._interrupt.set()
            done = False
            with self._lock:
                while not _shutdown.deferred:
                    done = self._flushed >= target and not self._outbox and not self._inflight
                    remaining = deadline - time.monotonic()
                    if done or remaining <= 0:
                        break
                    self._changed.wait(min(remaining, 0.1))
            if not done:
                for batch in self._take_memory():
                    self._spool(batch)
            return done
        finally:
            if _shutdown.deferred:
                _shutdown.run_deferred()

    def _exit_flush(self) -> None:
        _shutdown.set_exiting()
        try:
            self.shutdown()
        finally:
            _shutdown.release_held_signal()

    def shutdown(self, timeout: float | None = None) -> None:
        """Send what can be sent within ``shutdown_timeout``; spool the rest."""
        try:
            self._shutdown(timeout)
        finally:
            if _shutdown.deferred:
                _shutdown.run_deferred()

    def _shutdown(self, timeout: float | None) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        if self._pid != os.getpid():
            return
        if not self._threads:
            self._spool(self._lines(list(self._queue)))
            self._queue.clear()
            self.spool.close_segment()
            return
        budget = self.options.shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + budget
        self._stop.set()
        self._batcher_wake.set()
        self._sender_wake.set()
        self._interrupt.set()
        batcher, sender = self._threads
        batcher.join(max(self._deadline - time.monotonic(), 0.0))
        sender.join(max(self._deadline - time.monotonic(), 0.0) + 0.2)
        leftovers = self._take_memory()
        if not batcher.is_alive():
            self._take_queue()
            if self._pending:
                leftovers.append(self._pending)
                self._pending = []
        for batch in leftovers:
            self._spool(batch)
        self.spool.close_segment()
        if not sender.is_alive():
            self._transport.close()


def _weak_call(ref: weakref.WeakMethod[Callable[[], None]]) -> Callable[[], None]:
    def call() -> None:
        method = ref()
        if method is not None:
            try:
                method()
            except Exception:  # never fail interpreter exit
                _logger.exception("peekapi-otel shutdown error")

    return call


def _register_multiprocessing_finalizer(pipeline: Pipeline) -> None:
    import multiprocessing.util  # stdlib and light; needed for os._exit() children

    multiprocessing.util.register_after_fork(
        pipeline, Pipeline._after_fork_in_multiprocessing_child
    )
