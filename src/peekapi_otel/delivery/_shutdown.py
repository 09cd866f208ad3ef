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

#: True while an action waits for the main thread to leave pipeline code. Read on every
#: submit, so it is a plain module attribute.
deferred = False
_actions: list[Callable[[], None]] = []  # list.append is atomic: safe in a handler
_listeners: list[weakref.ref[Listener]] = []
#: Code of the functions through which the main thread enters pipeline code.
_entry_points: set[CodeType] = set()
_installed_pid = 0
_exiting = False
_held = False  # SIGTERM blocked on the main thread until the exit flush is done
_resent = 0
_previous_unraisablehook: Callable[[Any], object] | None = None


class Listener(Protocol):
    """A pipeline, as SIGTERM and the exit flush see it."""

    @property
    def closed(self) -> bool: ...

    def terminate(self) -> None: ...


class _Terminated(SystemExit):
    """The exit a SIGTERM asks for; its own type so a swallowed one can be recognised."""


def defer_signals_in(*functions: Callable[..., object]) -> None:
    """While the main thread runs one of ``functions`` (or anything they call), a
    SIGTERM's action waits until it returns: they may hold a lock the flush needs."""
    _entry_points.update(function.__code__ for function in functions)


def _inside_pipeline(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _entry_points:
            return True
        frame = frame.f_back
    return False


def _run(action: Callable[[], None], frame: FrameType | None) -> None:
    global deferred
    if _inside_pipeline(frame):
        _actions.append(action)
        deferred = True
        return
    action()


def run_deferred() -> None:
    """Run what a signal deferred; called where pipeline code returns to the caller."""
    global deferred
    deferred = False
    actions = _actions[:]
    del _actions[: len(actions)]
    if _exiting:
        return  # already on the way out: the exit flush is running
    for action in actions:
        action()


def notify_terminating() -> None:
    """Tell every live pipeline that the process is about to end."""
    for ref in list(_listeners):
        listener = ref()
        if listener is not None:
            listener.terminate()


def add_listener(listener: Listener) -> None:
    """Tell ``listener`` (held weakly) when SIGTERM asks for memory to go to disk."""
    _listeners[:] = [ref for ref in _listeners if ref() is not None]
    _listeners.append(weakref.ref(listener))


def set_exiting() -> None:
    global _exiting
    _exiting = True


def _exit() -> None:
    raise _Terminated(_EXIT_CODE)


def _unraisable(unraisable: Any) -> None:
    global _resent
    if (
        isinstance(unraisable.exc_value, _Terminated)
        and _resent < _MAX_RESENDS
        and signal.getsignal(signal.SIGTERM) is _on_sigterm
    ):
        _resent += 1
        try:
            _thread.start_new_thread(_resend, ())
            return
        except RuntimeError:
            pass  # no thread to be had: the process goes on, as it would without us
    previous = _previous_unraisablehook or sys.__unraisablehook__
    previous(unraisable)


def _resend() -> None:
    time.sleep(_RESEND_DELAY)
    _thread.interrupt_main(signal.SIGTERM)


def _install_unraisablehook() -> None:
    global _previous_unraisablehook
    if sys.unraisablehook is not _unraisable:
        _previous_unraisablehook = sys.unraisablehook
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
    global _held
    if _held or threading.current_thread() is not threading.main_thread():
        return
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (AttributeError, ValueError, OSError):
        return
    _held = True


def release_held_signal() -> None:
    """After the exit flush of every pipeline: let a held SIGTERM end the process."""
    global _held
    if not _held:
        return
    for ref in _listeners:
        listener = ref()
        if listener is not None and not listener.closed:
            return  # another pipeline still flushes; the last one releases
    _held = False
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    except (AttributeError, ValueError, OSError):
        pass


def install_sigterm_handler() -> bool:
    """Install the handler if SIGTERM still has its default action; ``True`` if installed."""
    global _installed_pid
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm:
            _installed_pid = os.getpid()
            return False
        if current is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return False
    _installed_pid = os.getpid()
    _install_unraisablehook()
    return True


def chain_sigterm() -> bool:
    """On the main thread: wrap a server's SIGTERM handler that would otherwise end the
    process without atexit. ``True`` if a wrapper was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if _installed_pid == os.getpid():
        return False  # our exit handler is in place here, and servers restore it
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or isinstance(current, _Chained) or not callable(current):
            return False
        signal.signal(signal.SIGTERM, _Chained(current))
    except (ValueError, OSError):
        return False
    return True


def _reset_in_child() -> None:
    global deferred, _exiting, _held
    deferred = False
    _exiting = False
    del _actions[:]
    if _held:  # the mask is inherited: a child must not keep SIGTERM blocked
        _held = False
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        except (AttributeError, ValueError, OSError):
            pass


os.register_at_fork(after_in_child=_reset_in_child)
