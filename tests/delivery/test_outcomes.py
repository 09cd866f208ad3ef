"""How each ingest answer is handled (SPEC §6 "Outcomes"), with scripted transports and
the real loopback ingest. Backoff checks use a seeded RNG and recorded waits."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from delivery.support import Scripted, dropped, fast_policy, key_of, make_span, options, wait_until
from ingest import Ingest, Reply  # type: ignore[import-not-found]
from peekapi_otel.core._record import record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._transport import SendResult


@dataclasses.dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The real policy, remembering each wait it chose."""

    waits: list[tuple[int, float]] = dataclasses.field(default_factory=list, compare=False)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        wait = super().backoff(attempt, retry_after)
        self.waits.append((attempt, wait))
        return wait


def test_429_retry_after_is_honoured(ingest: Ingest, tmp_path: Path) -> None:
    ingest.script.append(Reply(status=429, headers={"Retry-After": "2"}))
    pipeline = Pipeline(options(ingest.url, tmp_path), policy=fast_policy())
    try:
        spans = [make_span() for _ in range(10)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        ingest.wait_for(10, timeout=15)
        first, second = ingest.requests[0], ingest.requests[1]
        assert first.status == 429
        assert second.status == 200
        # Retry-After replaces the (much shorter) backoff of fast_policy().
        assert second.at - first.at >= 2.0
        assert ingest.keys() == {key_of(s): 1 for s in spans}
        assert wait_until(lambda: stats()["sent"] == 10, 5)  # the ack follows the record
        assert stats()["retried"] == 10
    finally:
        pipeline.shutdown()


def test_503_storm_backs_off_growing_capped_jittered(tmp_path: Path) -> None:
    import random

    policy = RecordingPolicy(base=0.02, cap=0.16, rng=random.Random(7))
    transport = Scripted(script=[SendResult(status=503)] * 12)
    pipeline = Pipeline(
        options("http://127.0.0.1:9/v1/events", tmp_path),
        transport=transport,
        policy=policy,
        recovery_interval=60.0,
    )
    try:
        spans = [make_span() for _ in range(20)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        assert wait_until(lambda: sum(transport.delivered().values()) == 20, 20)
    finally:
        pipeline.shutdown()
    assert transport.delivered() == {key_of(s): 1 for s in spans}
    # First batch: 5 attempts, then the sender goes to failing mode and probes once per
    # backoff step (one attempt each) until the ingest answers.
    retry_waits = [w for a, w in policy.waits[:4]]
    ceilings = [policy.ceiling(a) for a, _ in policy.waits]
    assert [a for a, _ in policy.waits[:4]] == [1, 2, 3, 4]
    assert ceilings[:4] == [0.02, 0.04, 0.08, 0.16]
    assert max(ceilings) == 0.16  # capped
    assert all(0 < w <= c for (_, w), c in zip(policy.waits, ceilings, strict=True))
    assert len({round(w, 6) for w in retry_waits}) == len(retry_waits)  # jittered
    # Never sooner than the chosen wait.
    times = [t for t, _, _ in transport.calls]
    for (_, wait), before, after in zip(policy.waits[:4], times, times[1:], strict=False):
        assert after - before >= wait - 0.005
    s = stats()
    assert s["sent"] == 20
    assert dropped(s) == {}
    assert s["spooled"] >= 20 - 10  # the failing ingest sent batches to disk


def test_400_drops_batch_once_with_reason(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.script.append(Reply(status=400, body=b'{"error":"bad field"}'))
    ingest.script.append(Reply(status=400, body=b'{"error":"bad field"}'))
    pipeline = Pipeline(options(ingest.url, tmp_path, batch_size=5), policy=fast_policy())
    caplog.set_level(logging.WARNING, logger="peekapi_otel")
    try:
        for _ in range(5):
            pipeline.submit(record_of_span(make_span()))
        assert pipeline.force_flush(5)
        for _ in range(5):
            pipeline.submit(record_of_span(make_span()))
        assert pipeline.force_flush(5)
        spans = [make_span() for _ in range(5)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        assert pipeline.force_flush(5)
    finally:
        pipeline.shutdown()
    assert [r.status for r in ingest.requests] == [400, 400, 200]  # never retried
    assert ingest.keys() == {key_of(s): 1 for s in spans}
    assert dropped(stats()) == {"rejected": 10}
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    # The first drop is logged with its reason; the rest once, in the shutdown summary.
    assert len(lines) == 2
    assert "bad field" in lines[0]
    assert "{'rejected': 5} (in total: {'rejected': 10})" in lines[1]


def test_401_keeps_events_pauses_and_says_key_rejected(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.default = Reply(status=401, body=b'{"error":"invalid api key"}')
    errors: list[BaseException] = []
    opts = options(ingest.url, tmp_path, on_error=errors.append)
    pipeline = Pipeline(opts, policy=fast_policy(), auth_pause=1.5)
    caplog.set_level(logging.WARNING, logger="peekapi_otel")
    try:
        spans = [make_span() for _ in range(30)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        assert pipeline.force_flush(5)
        time.sleep(0.5)
        assert len(ingest.requests) == 1  # paused: no hammering with a rejected key
        assert pipeline.spool.info().events == 30
        more = [make_span() for _ in range(10)]
        for span in more:
            pipeline.submit(record_of_span(span))
        assert pipeline.force_flush(5)
        assert len(ingest.requests) == 1
        ingest.default = Reply()  # the key is fixed on the server side
        assert wait_until(lambda: len(ingest.keys()) == 40, 15)
    finally:
        pipeline.shutdown()
    assert ingest.keys() == {key_of(s): 1 for s in spans + more}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 1
    assert "rejected the API key (HTTP 401)" in messages[0]
    assert "PEEKAPI_API_KEY" in messages[0]
    assert len(errors) == 1
    assert dropped(stats()) == {}


def test_413_splits_batch_and_drops_single_oversize(ingest: Ingest, tmp_path: Path) -> None:
    from peekapi_otel.delivery._transport import HttpTransport

    limit = 2000  # this ingest refuses bodies over 2000 bytes
    sent_sizes: list[int] = []

    class Limited(HttpTransport):
        def send(self, body: bytes, timeout: float) -> SendResult:
            sent_sizes.append(len(body))
            if len(body) > limit:
                return SendResult(status=413)
            return super().send(body, timeout)

    opts = options(ingest.url, tmp_path, batch_size=41)
    pipeline = Pipeline(opts, transport=Limited(ingest.url, "k"), policy=fast_policy())
    try:
        spans = [make_span() for _ in range(40)]
        oversize = make_span(route="/" + "x" * 2040)  # alone still over the limit
        for span in [*spans[:20], oversize, *spans[20:]]:
            pipeline.submit(record_of_span(span))
        assert pipeline.force_flush(10)
    finally:
        pipeline.shutdown()
    assert ingest.keys() == {key_of(s): 1 for s in spans}
    assert sent_sizes[0] > limit
    assert len(sent_sizes) > 3
    assert dropped(stats()) == {"oversize": 1}
    assert stats()["sent"] == 40


def test_301_is_not_followed(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = Ingest().start()
    try:
        ingest.default = Reply(status=301, headers={"Location": other.url})
        pipeline = Pipeline(options(ingest.url, tmp_path), policy=fast_policy())
        caplog.set_level(logging.WARNING, logger="peekapi_otel")
        try:
            for _ in range(10):
                pipeline.submit(record_of_span(make_span()))
            assert pipeline.force_flush(5)
            time.sleep(0.3)
        finally:
            pipeline.shutdown()
        assert other.requests == []
        assert len(ingest.requests) == 1
        assert pipeline.spool.info().events == 10  # kept for when the endpoint is fixed
        (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "301" in message
        assert "never followed" in message
        assert dropped(stats()) == {}
    finally:
        other.stop()


def test_hanging_ingest_costs_app_nothing_and_loses_nothing(ingest: Ingest, tmp_path: Path) -> None:
    ingest.default = Reply(hang=True)
    pipeline = Pipeline(options(ingest.url, tmp_path, timeout=1.0), policy=fast_policy())
    try:
        spans = [make_span() for _ in range(500)]
        worst = 0.0
        for span in spans:
            before = time.perf_counter()
            pipeline.submit(record_of_span(span))
            worst = max(worst, time.perf_counter() - before)
        # Waiting for the network would cost a whole 1 s timeout; the margin below that
        # leaves room for a loaded machine's scheduling hiccups.
        assert worst < 0.5  # submit never waits for the network
        assert wait_until(lambda: ingest.hung >= 2, 10)  # tried, timed out, tried again
        assert ingest.keys() == {}
        ingest.default = Reply()
        assert wait_until(lambda: len(ingest.keys()) == 500, 30)
        assert pipeline.force_flush(5)
    finally:
        pipeline.shutdown()
    assert ingest.keys() == {key_of(s): 1 for s in spans}
    assert dropped(stats()) == {}


def test_oversize_events_are_counted_on_both_encoding_paths(ingest: Ingest, tmp_path: Path) -> None:
    """A span whose attributes decide its event is queued as a record and encoded by the
    batcher; one that needs more of the span is encoded at once. Either way an event
    over max_event_bytes is counted, not sent, and the others go out."""
    pipeline = Pipeline(options(ingest.url, tmp_path, max_event_bytes=1000), policy=fast_policy())
    try:
        before = stats()["dropped"]["oversize"]
        long = "/x" + "y" * 2000
        big = make_span(path=long, route=long)  # a record: int status and a path
        no_status = _span_without_status(long)  # encoded at once
        fine = [make_span(), _span_without_status("/ok")]
        for span in (big, no_status, *fine):
            pipeline.submit(record_of_span(span))
        assert pipeline.force_flush(10)
        assert ingest.keys() == {key_of(s): 1 for s in fine}
        assert stats()["dropped"]["oversize"] - before == 2
    finally:
        pipeline.shutdown()


def _span_without_status(path: str) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    span = (
        TracerProvider()
        .get_tracer("t")
        .start_span(
            "GET", kind=SpanKind.SERVER, attributes={"http.request.method": "GET", "url.path": path}
        )
    )
    span.end()
    return span


def test_batch_taken_over_then_delivered_is_not_sent_again(tmp_path: Path) -> None:
    """SIGTERM spools the batch whose POST is under way, so nothing is lost if the
    process dies before the answer. When the answer is a 200 after all, this process
    must not send that batch again from disk (another process may: SPEC's one duplicate
    batch)."""
    import threading

    from peekapi_otel.delivery import _shutdown

    entered, release = threading.Event(), threading.Event()

    def answer(events: list[dict[str, Any]]) -> SendResult:
        if not entered.is_set():
            entered.set()
            release.wait(10)  # the first POST is under way until released
        return SendResult(status=200)

    transport = Scripted(responder=answer)
    pipeline = Pipeline(
        options("http://127.0.0.1:9/v1/events", tmp_path), transport=transport, policy=fast_policy()
    )
    try:
        spans = [make_span() for _ in range(5)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        assert entered.wait(10), "the batch was never sent"
        _shutdown.notify_terminating()  # what SIGTERM does first
        assert wait_until(lambda: pipeline.spool.info().events == 5, 10), "not spooled"
        release.set()
        assert wait_until(lambda: pipeline.spool.info().events == 0, 10), "not drained"
        pipeline.shutdown()
        assert transport.delivered() == {key_of(s): 1 for s in spans}
    finally:
        release.set()
        pipeline.shutdown()
