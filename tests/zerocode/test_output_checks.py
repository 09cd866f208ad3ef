"""The server-log check the zero-code tests share: it fails on our code, not on
upstream noise."""

from __future__ import annotations

import pytest

from zerocode.support import assert_clean_output, tracebacks

# What a uvicorn ``--workers 2`` log showed once when SIGTERM reached a worker that the
# supervisor was just restarting: asyncio's own finalizer, no frame of ours.
ASYNCIO_FINALIZER = """\
INFO:     Started parent process [4242]
INFO:     Waiting for child process [4245]
Exception ignored in: <function BaseEventLoop.__del__ at 0x7f3a2c1d5e40>
Traceback (most recent call last):
  File "/usr/lib/python3.11/asyncio/base_events.py", line 692, in __del__
    self.close()
  File "/usr/lib/python3.11/asyncio/unix_events.py", line 68, in close
    super().close()
AttributeError: '_UnixSelectorEventLoop' object has no attribute '_signal_handlers'
INFO:     Stopping parent process [4242]
"""

OURS = """\
[2026-12-03 08:00:00 +0000] [77] [ERROR] Error handling request /items
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/gunicorn/workers/sync.py", line 135, in handle
    self.handle_request(listener, req, client, addr)
  File "/venv/lib/python3.11/site-packages/peekapi_otel/otel/_wsgi_body.py", line 10, in read
    return self._stream.read(*args)
ValueError: I/O operation on closed file
"""

CHAINED = """\
Traceback (most recent call last):
  File "/usr/lib/python3.11/socket.py", line 1, in send
    raise OSError
OSError: broken pipe

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/peekapi_otel/delivery/_transport.py", line 3, in s
    raise RuntimeError("x")
RuntimeError: x
"""


def test_upstream_noise_is_not_a_failure() -> None:
    assert len(tracebacks(ASYNCIO_FINALIZER)) == 1
    assert assert_clean_output(ASYNCIO_FINALIZER) == ASYNCIO_FINALIZER


@pytest.mark.parametrize("text", [OURS, CHAINED, ASYNCIO_FINALIZER + OURS])
def test_a_traceback_through_our_code_fails(text: str) -> None:
    with pytest.raises(AssertionError, match="traceback through peekapi-otel"):
        assert_clean_output(text)


def test_start_up_failures_and_internal_errors_still_fail() -> None:
    for line in ("Failed to auto initialize OpenTelemetry", "peekapi-otel hit an internal error"):
        with pytest.raises(AssertionError):
            assert_clean_output(f"INFO: started\n{line}\n")


def test_chained_tracebacks_are_split() -> None:
    blocks = tracebacks(CHAINED)
    assert [b.splitlines()[-1] for b in blocks] == ["OSError: broken pipe", "RuntimeError: x"]
