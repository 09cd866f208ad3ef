"""SIGTERM ends with what is in memory either sent or on disk.

Two cases (OTEL-FACTS Q7):

* SIGTERM still has its default action (uvicorn single or ``--workers``, plain scripts):
  :func:`install_sigterm_handler` installs a handler that raises ``SystemExit(143)``, so
  the interpreter exits normally and atexit flushes. uvicorn restores this handler before
  re-raising the signal, so it works there too.
* A server put its own handler in place after ours was gone (gunicorn with
  ``UvicornWorker`` resets every handler to the default in the worker, then uvicorn
  installs its own and re-raises SIGTERM with the *default* action when it is done, so
  atexit never runs). :func:`chain_sigterm` wraps that handler: on SIGTERM it tells
  every pipeline to put what is in memory on disk (and keep sending from there), blocks
  SIGTERM on the main thread, then calls the server's handler as before. The server's
  re-raised SIGTERM stays pending, so the server returns, the interpreter exits normally,
  atexit flushes, and :func:`release_held_signal` unblocks it last: the process still ends
  by SIGTERM, as the server meant, only after the flush.

A SIGTERM that arrives while the interpreter is still starting (a worker that a server
restarts and stops at once, with ``sitecustomize`` still importing instrumentations)
ends the process by the signal, as without us: an exception there is a fatal start-up
error, and nothing has been recorded yet.

A signal handler runs wherever the main thread happens to be, and that can be a place
that ignores exceptions (a weakref callback, ``__del__``): there the ``SystemExit`` would
be printed as "Exception ignored" and the process would go on. Our exit is a
:class:`_Terminated`, which an ``unraisablehook`` recognises and sends again with
``_thread.interrupt_main`` from a short-lived thread a moment later (from the hook
itself it would land inside the hook), so it lands at an ordinary point instead.

The handlers take no lock and do no I/O while the main thread is inside pipeline code
(where it may hold a lock the flush needs): the action is deferred to the moment the main
thread leaves that code (:func:`run_deferred`), which is microseconds later. The entry
points that count as pipeline code are registered with :func:`defer_signals_in`.

Everything this keeps per process is one :data:`SIGNALS` object (:class:`SignalState`),
reset in a forked child and by ``peekapi_otel.testing.reset_process_state()``.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, Final, Protocol

_EXIT_CODE: Final = 128 + signal.SIGTERM
#: Bounds the re-sends of an exit swallowed by a context that ignores exceptions.
_MAX_RESENDS: Final = 8
_RESEND_DELAY: Final = 0.01


class Listener(Protocol):
    """A pipeline, as SIGTERM and the exit flush see it."""

    @property
    def closed(self) -> bool: ...

    def terminate(self) -> None: ...


class SignalState:
    """What SIGTERM handling keeps per process. A signal handler may change it at any
    bytecode boundary, so it holds only plain fields whose updates are single steps
    (``list.append``, an attribute store): no lock is taken in a handler."""

    def __init__(self) -> None:
        #: Code of the functions through which the main thread enters pipeline code.
        #: Registered once at import, so no reset clears it.
        self.entry_points: set[CodeType] = set()
        self.listeners: list[weakref.ref[Listener]] = []
        self.installed_pid = 0
        self.previous_unraisablehook: Callable[[Any], object] | None = None
        #: SIGTERM blocked on the main thread until the exit flush is done.
        self.held = False
        self.clear_pending()

    def clear_pending(self) -> None:
        """Forget what a signal left to do (a forked child starts with nothing)."""
        #: True while an action waits for the main thread to leave pipeline code. Read
        #: on every submit, so it is a plain attribute.
        self.deferred = False
        self.actions: list[Callable[[], None]] = []
        self.exiting = False
        self.resent = 0
        self.release_hold()

    def release_hold(self) -> None:
        """Unblock SIGTERM on this thread if :func:`_hold` blocked it."""
        if self.held:
            self.held = False
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            except (AttributeError, ValueError, OSError):
                pass

    def reset(self) -> None:
        """Back to the state at import: no listeners, nothing pending, and SIGTERM and
        ``sys.unraisablehook`` as they were before this module installed its own."""
        self.clear_pending()
        self.listeners = []
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            try:
                if current is _on_sigterm:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                elif isinstance(current, _Chained):
                    signal.signal(signal.SIGTERM, current.previous)
            except (ValueError, OSError):
                pass
        if sys.unraisablehook is _unraisable:
            sys.unraisablehook = self.previous_unraisablehook or sys.__unraisablehook__
        self.previous_unraisablehook = None
        self.installed_pid = 0


SIGNALS: Final = SignalState()


class _Terminated(SystemExit):
    """The exit a SIGTERM asks for; its own type so a swallowed one can be recognised."""


def defer_signals_in(*functions: Callable[..., object]) -> None:
    """While the main thread runs one of ``functions`` (or anything they call), a
    SIGTERM's action waits until it returns: they may hold a lock the flush needs."""
    SIGNALS.entry_points.update(function.__code__ for function in functions)


def _inside_pipeline(frame: FrameType | None) -> bool:
    entry_points = SIGNALS.entry_points
    while frame is not None:
        if frame.f_code in entry_points:
            return True
        frame = frame.f_back
    return False


def _run(action: Callable[[], None], frame: FrameType | None) -> None:
    if _inside_pipeline(frame):
        SIGNALS.actions.append(action)
        SIGNALS.deferred = True
        return
    action()


def run_deferred() -> None:
    """Run what a signal deferred; called where pipeline code returns to the caller."""
    SIGNALS.deferred = False
    pending = SIGNALS.actions
    actions = pending[:]
    del pending[: len(actions)]
    if SIGNALS.exiting:
        return  # already on the way out: the exit flush is running
    for action in actions:
        action()


def notify_terminating() -> None:
    """Tell every live pipeline that the process is about to end."""
    for ref in list(SIGNALS.listeners):
        listener = ref()
        if listener is not None:
            listener.terminate()


def add_listener(listener: Listener) -> None:
    """Tell ``listener`` (held weakly) when SIGTERM asks for memory to go to disk."""
    SIGNALS.listeners = [ref for ref in SIGNALS.listeners if ref() is not None]
    SIGNALS.listeners.append(weakref.ref(listener))


def set_exiting() -> None:
    SIGNALS.exiting = True


def _exit() -> None:
    raise _Terminated(_EXIT_CODE)


def _unraisable(unraisable: Any) -> None:
    if (
        isinstance(unraisable.exc_value, _Terminated)
        and SIGNALS.resent < _MAX_RESENDS
        and signal.getsignal(signal.SIGTERM) is _on_sigterm
    ):
        SIGNALS.resent += 1
        try:
            _thread.start_new_thread(_resend, ())
            return
        except RuntimeError:
            pass  # no thread to be had: the process goes on, as it would without us
    previous = SIGNALS.previous_unraisablehook or sys.__unraisablehook__
    previous(unraisable)


def _resend() -> None:
    time.sleep(_RESEND_DELAY)
    _thread.interrupt_main(signal.SIGTERM)


def _install_unraisablehook() -> None:
    if sys.unraisablehook is not _unraisable:
        SIGNALS.previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _unraisable


def _starting_up(frame: FrameType | None) -> bool:
    """The interpreter is still importing ``site`` (``opentelemetry-instrument`` runs the
    distro from ``sitecustomize``): no app runs yet, and an exception here is a fatal
    start-up error."""
    while frame is not None:
        if frame.f_code.co_filename == "<frozen site>" or frame.f_globals.get("__name__") == "site":
            return True
        frame = frame.f_back
    return False


def _default_action(signum: int) -> None:
    """End the process by the signal, as it would have ended without our handler."""
    try:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    except (ValueError, OSError):
        raise _Terminated(_EXIT_CODE) from None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _starting_up(frame):
        # A server that restarts a worker and is stopped at once (uvicorn --workers)
        # sends SIGTERM to a child still starting; nothing has been recorded there.
        _default_action(signum)
        return
    _run(_exit, frame)


class _Chained:
    """A server's SIGTERM handler, preceded by a flush to disk."""

    def __init__(self, previous: Callable[[int, FrameType | None], Any]) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        def action() -> None:
            _hold()
            notify_terminating()
            self.previous(signum, None)

        _run(action, frame)


def _hold() -> None:
    if SIGNALS.held or threading.current_thread() is not threading.main_thread():
        return
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (AttributeError, ValueError, OSError):
        return
    SIGNALS.held = True


def release_held_signal() -> None:
    """After the exit flush of every pipeline: let a held SIGTERM end the process."""
    if not SIGNALS.held:
        return
    for ref in SIGNALS.listeners:
        listener = ref()
        if listener is not None and not listener.closed:
            return  # another pipeline still flushes; the last one releases
    SIGNALS.release_hold()


def install_sigterm_handler() -> bool:
    """Install the handler if SIGTERM still has its default action; ``True`` if installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm:
            SIGNALS.installed_pid = os.getpid()
            return False
        if current is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return False
    SIGNALS.installed_pid = os.getpid()
    _install_unraisablehook()
    return True


def chain_sigterm() -> bool:
    """On the main thread: wrap a server's SIGTERM handler that would otherwise end the
    process without atexit. ``True`` if a wrapper was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if SIGNALS.installed_pid == os.getpid():
        return False  # our exit handler is in place here, and servers restore it
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or isinstance(current, _Chained) or not callable(current):
            return False
        signal.signal(signal.SIGTERM, _Chained(current))
    except (ValueError, OSError):
        return False
    return True


# The mask is inherited: a child must not keep SIGTERM blocked, nor act on what a
# signal left to its parent.
os.register_at_fork(after_in_child=SIGNALS.clear_pending)
