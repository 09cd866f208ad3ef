"""From finished request spans to acknowledged events.

Two daemon threads per process:

* the *batcher* turns queued spans into encoded events and batches; a batch goes to the
  in-memory outbox, or to the disk spool when the outbox is full or the ingest is failing;
* the *sender* (``peekapi-sender``) POSTs outbox batches, retries with backoff, and drains
  the spool (at start-up, every 60 s, and as soon as the ingest answers again).

The request path only appends to a deque (``submit``): no lock, no I/O.
"""

from __future__ import annotations

import atexit
import functools
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

from peekapi_otel._events import encode_batch, encode_event, span_to_event
from peekapi_otel._options import Options
from peekapi_otel._retry import Outcome, RetryPolicy, classify
from peekapi_otel._spool import Claim, Spool
from peekapi_otel._stats import STATS
from peekapi_otel._transport import HttpTransport, SendResult, Transport

_logger = logging.getLogger(__name__)

RECOVERY_INTERVAL: Final = 60.0
AUTH_PAUSE: Final = 300.0


class _Cancelled(Exception):
    pass


class Pipeline:
    """Queue, batcher, sender and spool for one (endpoint, API key)."""

    def __init__(
        self,
        options: Options,
        *,
        transport: Transport | None = None,
        spool: Spool | None = None,
        policy: RetryPolicy | None = None,
        start: bool = True,
    ) -> None:
        self.options = options
        self._transport: Transport = transport or HttpTransport(
            options.endpoint, options.api_key, compression=options.compression
        )
        self.spool = spool if spool is not None else Spool(
            options.spool_dir(), options.max_storage_bytes
        )
        self.policy = policy or RetryPolicy()
        self._start_threads = start
        self._init_state()
        weak = weakref.WeakMethod(self._after_fork_in_child)

        def after_fork() -> None:
            method = weak()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=after_fork)
        self._atexit = functools.partial(_call_weak, weakref.WeakMethod(self.shutdown))
        atexit.register(self._atexit)
        if start:
            self._ensure_threads()

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[ReadableSpan] = deque()
        self._outbox: deque[list[bytes]] = deque()
        self._outbox_events = 0
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._batcher_wake = threading.Event()
        self._sender_wake = threading.Event()
        self._stop = threading.Event()
        self._flush_requests = 0
        self._flushed = 0
        self._inflight: list[bytes] | None = None
        self._healthy = True
        self._paused_until = 0.0
        self._next_probe = 0.0
        self._probe_attempt = 0
        self._next_recovery = 0.0  # at once: recovery starts with the thread
        self._recover_now = True
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._deadline: float | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    # --- producer side (app threads) -------------------------------------------------

    def submit(self, span: ReadableSpan) -> None:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        if self._closed:
            STATS.drop("disabled", 1, "the PeekAPI exporter was shut down")
            return
        queue = self._queue
        if len(queue) >= self.options.max_buffer_size:
            STATS.drop("queue_full", 1, "the background batcher is not keeping up")
            return
        queue.append(span)
        STATS.add("seen")
        if len(queue) == self.options.batch_size:
            self._batcher_wake.set()

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
        closed = self._closed
        self._init_state()
        self._closed = closed
        if self._start_threads:
            self._ensure_threads()

    # --- batcher -----------------------------------------------------------------------

    def _batcher_loop(self) -> None:
        interval = self.options.flush_interval
        next_flush = time.monotonic() + interval
        while True:
            self._batcher_wake.wait(max(next_flush - time.monotonic(), 0.0))
            self._batcher_wake.clear()
            try:
                flush_to = self._flush_requests
                stopping = self._stop.is_set()
                now = time.monotonic()
                due = now >= next_flush or flush_to != self._flushed or stopping
                self._convert()
                self._cut_batches(partial=due)
                if due:
                    next_flush = now + interval + random.uniform(0, interval * 0.1)
                    self.spool.close_segment(idle_for=interval)
                if flush_to != self._flushed:
                    with self._lock:
                        self._flushed = flush_to
                        self._changed.notify_all()
            except Exception:  # noqa: BLE001 - the thread must survive anything
                _logger.exception("peekapi-otel batcher error")
            if stopping:
                return

    def _convert(self) -> None:
        opts = self.options
        queue = self._queue
        for _ in range(len(queue)):
            span = queue.popleft()
            try:
                event = span_to_event(
                    span,
                    path_source=opts.path_source,
                    collect_query_string=opts.collect_query_string,
                    consumer_headers=opts.consumer_headers,
                    metadata=opts.metadata,
                    identify_consumer=opts.identify_consumer,
                )
                line = encode_event(event, opts.max_event_bytes)
            except Exception as exc:  # noqa: BLE001 - one bad span must not stop the rest
                STATS.drop("internal_error", 1, f"could not convert a span: {exc!r}")
                continue
            if line is None:
                STATS.drop("oversize", 1, f"event over max_event_bytes={opts.max_event_bytes}")
                continue
            self._pending.append(line)

    def _cut_batches(self, partial: bool) -> None:
        size = self.options.batch_size
        pending = self._pending
        while len(pending) >= size or (partial and pending):
            batch, self._pending = pending[:size], pending[size:]
            pending = self._pending
            self._route(batch)

    def _route(self, batch: list[bytes]) -> None:
        """Outbox when the ingest is healthy and there is room; otherwise the spool."""
        with self._lock:
            room = self._outbox_events + len(batch) <= self.options.max_buffer_size
            healthy = self._healthy and self._paused_until <= time.monotonic()
            if room and (healthy or not self.spool.usable):
                self._outbox.append(batch)
                self._outbox_events += len(batch)
                self._sender_wake.set()
                return
        self._spool(batch)

    def _spool(self, batch: list[bytes]) -> None:
        written = self.spool.write(batch)
        if written:
            STATS.add("spooled", written)

    # --- sender ------------------------------------------------------------------------

    def _sender_loop(self) -> None:
        batcher = self._threads[0]
        while True:
            if self._stop.is_set() and not self._outbox and not batcher.is_alive():
                return
            try:
                if not self._sender_step():
                    self._sender_wake.wait(self._idle_wait())
                    self._sender_wake.clear()
            except _Cancelled:
                pass
            except Exception:  # noqa: BLE001 - the thread must survive anything
                _logger.exception("peekapi-otel sender error")
                self._stop.wait(1.0)
            if self._stop.is_set() and self._deadline is not None:
                if time.monotonic() >= self._deadline:
                    return

    def _idle_wait(self) -> float:
        now = time.monotonic()
        if self._stop.is_set():
            return 0.05
        targets = [self._next_recovery]
        if self._paused_until > now:
            targets = [self._paused_until]
        elif not self._healthy:
            targets.append(self._next_probe)
        return min(max(min(targets) - now, 0.05), 5.0)

    def _sender_step(self) -> bool:
        """Do one unit of work; ``False`` when there was nothing to do."""
        now = time.monotonic()
        if self._paused_until > now and not self._stop.is_set():
            return False
        batch = self._take()
        if batch is not None:
            if not self._healthy and (self._stop.is_set() or now < self._next_probe):
                self._spool(batch)  # while the ingest keeps failing, batches go to disk
                self._release()
                return True
            self._deliver(batch)
            self._release()
            return True
        if self._stop.is_set():
            return False
        if not self._healthy and now < self._next_probe:
            return False
        if self._recover_now or now >= self._next_recovery:
            return self._recover()
        return False

    def _take(self) -> list[bytes] | None:
        with self._lock:
            if not self._outbox:
                return None
            batch = self._outbox.popleft()
            self._outbox_events -= len(batch)
            self._inflight = batch
            return batch

    def _release(self) -> None:
        with self._lock:
            self._inflight = None
            self._changed.notify_all()

    def _deliver(self, batch: list[bytes]) -> None:
        """Send a live batch; on giving up it goes to the spool."""
        sent = self._send(batch, live=True)
        if not sent:
            self._spool(batch)

    def _recover(self) -> bool:
        """Drain spooled segments while the ingest answers; live batches go first."""
        self._recover_now = False
        self._next_recovery = time.monotonic() + RECOVERY_INTERVAL
        self.spool.close_segment()
        claim = self.spool.claim()
        if claim is None:
            return False
        try:
            while claim.remaining and not self._stop.is_set():
                while self._outbox and not self._stop.is_set():
                    batch = self._take()
                    if batch is not None:
                        self._deliver(batch)
                        self._release()
                if not self._healthy and time.monotonic() < self._next_probe:
                    return True
                batch = claim.batch(self.options.batch_size)
                if self._send(batch, live=False, claim=claim):
                    STATS.add("recovered", len(batch))
                    claim.ack(len(batch))
                elif not self._healthy or self._paused_until > time.monotonic():
                    return True
        finally:
            claim.release()
        self._recover_now = True  # more segments may wait: keep draining at full speed
        return True

    def _send(self, batch: list[bytes], *, live: bool, claim: Claim | None = None) -> bool:
        """POST one batch with retries. ``True`` when it is done with (delivered or
        dropped for good); ``False`` when the caller must keep it."""
        policy = self.policy
        attempts = 1 if not self._healthy else policy.attempts
        for attempt in range(1, attempts + 1):
            result = self._post(batch)
            outcome = classify(result)
            if outcome is Outcome.OK:
                self._mark_healthy()
                STATS.add("sent", len(batch))
                STATS.add("batches_sent")
                if self.options.debug:
                    _logger.info("peekapi-otel sent %d events", len(batch))
                return True
            if outcome is Outcome.TOO_LARGE:
                return self._split(batch, live=live, claim=claim)
            if outcome is Outcome.REJECTED:
                STATS.drop(
                    "rejected",
                    len(batch),
                    f"ingest answered {result.status}: {result.excerpt.strip()[:200]!r}",
                )
                self._mark_healthy()
                return True
            if outcome is Outcome.PAUSE:
                self._pause(result)
                return False
            self._report_failure(result)
            if attempt < attempts:
                STATS.add("retried", len(batch))
                wait = policy.backoff(attempt, result.retry_after)
                if self._wait(wait):
                    return False
        self._mark_failing(result)
        return False

    def _split(self, batch: list[bytes], *, live: bool, claim: Claim | None) -> bool:
        if len(batch) == 1:
            STATS.drop("oversize", 1, "the ingest answered 413 for a single event")
            return True
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            if not self._send(part, live=live):
                if claim is None:
                    return False
                # Part of a spooled batch was delivered: keep the rest for a later drain
                # by writing it back, so the segment can be acknowledged as a whole.
                self._spool(part)
        return True

    def _post(self, batch: list[bytes]) -> SendResult:
        timeout = self.options.timeout
        if self._deadline is not None:
            timeout = max(min(timeout, self._deadline - time.monotonic()), 0.05)
        try:
            return self._transport.send(encode_batch(batch), timeout)
        except Exception as exc:  # noqa: BLE001 - transports must not kill the sender
            return SendResult(error=f"{type(exc).__name__}: {exc}")

    def _wait(self, seconds: float) -> bool:
        """Sleep unless shutting down; ``True`` when the sleep was cut short by shutdown."""
        if self._deadline is not None:
            return True
        return self._stop.wait(seconds)

    # --- health --------------------------------------------------------------------

    def _mark_healthy(self) -> None:
        if not self._healthy or self._paused_until:
            STATS.forget("failing")
            STATS.forget("paused")
            _logger.warning("peekapi-otel: the ingest answers again; sending spooled events")
            self._recover_now = True
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
        self._paused_until = time.monotonic() + AUTH_PAUSE
        if result.status is not None and 300 <= result.status < 400:
            what = (
                f"the ingest answered {result.status} (redirect to {result.location!r}); "
                "redirects are never followed: set PEEKAPI_ENDPOINT to the final URL"
            )
        else:
            what = (
                f"the ingest rejected the API key (HTTP {result.status}); check "
                "PEEKAPI_API_KEY"
            )
        STATS.once(
            "paused",
            logging.ERROR,
            "peekapi-otel: %s. Events are kept on disk and sending is retried every %d s",
            what,
            int(AUTH_PAUSE),
        )

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
            callback = self.options.on_error
            if callback is not None:
                try:
                    callback(RuntimeError(f"PeekAPI send failed: {what}"))
                except Exception:  # noqa: BLE001 - user callback
                    pass

    # --- flush and shutdown ------------------------------------------------------------

    def force_flush(self, timeout: float) -> bool:
        """Send everything queued now; what cannot be sent in ``timeout`` is spooled."""
        if self._closed or self._pid != os.getpid() or not self._threads:
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_requests += 1
            target = self._flush_requests
        self._batcher_wake.set()
        with self._lock:
            while self._flushed < target or self._outbox or self._inflight is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.1))
        return self._spill_outbox()

    def _spill_outbox(self) -> bool:
        with self._lock:
            batches = list(self._outbox)
            self._outbox.clear()
            self._outbox_events = 0
        for batch in batches:
            self._spool(batch)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid() or not self._threads:
            return
        budget = self.options.shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + budget
        self._stop.set()
        self._batcher_wake.set()
        self._sender_wake.set()
        batcher, sender = self._threads
        batcher.join(max(self._deadline - time.monotonic(), 0.0))
        sender.join(max(self._deadline - time.monotonic(), 0.0))
        # Whatever is still in memory goes to disk; an in-flight batch too, at the risk
        # of one duplicate batch if its POST completes after all (SPEC §6).
        with self._lock:
            leftovers = list(self._outbox)
            self._outbox.clear()
            if sender.is_alive() and self._inflight is not None:
                leftovers.append(self._inflight)
        if batcher.is_alive():
            leftovers_spans = len(self._queue)
            if leftovers_spans:
                STATS.drop("queue_full", leftovers_spans, "still queued when shutdown ended")
        else:
            self._convert()
            if self._pending:
                leftovers.append(self._pending)
                self._pending = []
        for batch in leftovers:
            self._spool(batch)
        self.spool.close_segment()
        if not sender.is_alive():
            self._transport.close()
        atexit.unregister(self._atexit)


def _call_weak(ref: Callable[[], Callable[[], None] | None]) -> None:
    method = ref()
    if method is not None:
        try:
            method()
        except Exception:  # noqa: BLE001 - never fail interpreter exit
            _logger.exception("peekapi-otel shutdown error")
