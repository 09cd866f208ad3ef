"""The delivery layers built one by one, with a clock that moves only when a wait asks it
to: unit tests drive them step by step, on the test's thread, without sleeping."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.support import Scripted, event_lines, fast_policy, options
from peekapi_otel.delivery._batcher import Batcher
from peekapi_otel.delivery._clock import Clock
from peekapi_otel.delivery._control import Control
from peekapi_otel.delivery._health import Health
from peekapi_otel.delivery._outbox import Outbox
from peekapi_otel.delivery._recovery import Recovery
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._sender import Sender, SendLoop
from peekapi_otel.delivery._spool import Spool

DOWN = "http://127.0.0.1:9/v1/events"


@dataclass
class FakeClock(Clock):
    """Starts at ``start``; a wait that is not cut short by its event moves time on."""

    t: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        if event.is_set():
            return True
        self.t += max(seconds, 0.0)
        return False


@dataclass
class Layers:
    clock: FakeClock
    control: Control
    outbox: Outbox
    health: Health
    sender: Sender
    recovery: Recovery
    batcher: Batcher
    loop: SendLoop
    spool: Spool
    transport: Scripted


def build(
    tmp_path: Path,
    transport: Scripted | None = None,
    policy: RetryPolicy | None = None,
    pause: float = 300.0,
    **overrides: Any,
) -> Layers:
    opts = options(DOWN, tmp_path, **overrides)
    clock = FakeClock()
    transport = transport if transport is not None else Scripted()
    policy = policy if policy is not None else fast_policy()
    spool = Spool(opts.spool_dir(), opts.max_storage_bytes)
    control = Control()
    outbox = Outbox(opts.max_buffer_size)
    health = Health(opts, policy, control, clock, pause_seconds=pause, spool_dir=spool.directory)
    sender = Sender(opts, transport, policy, health, control, clock)
    recovery = Recovery(spool, sender, health, control, clock, batch_size=opts.batch_size)
    batcher = Batcher(opts, outbox, health, recovery, spool, control, clock)
    loop = SendLoop(sender, health, outbox, recovery, control, clock)
    return Layers(clock, control, outbox, health, sender, recovery, batcher, loop, spool, transport)


lines = event_lines
