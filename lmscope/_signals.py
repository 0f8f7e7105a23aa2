"""SIGTERM and SIGINT deliver lmscope's queued spans first, then reach the app's own handling unchanged.

Without this a SIGTERM with the default action kills the process at once: no atexit hook runs, and every span
still queued for export is lost without a word. `install` (from `instrument()`, in the main thread, when spans
are exported) puts a handler on each signal the app has not ignored. It flushes within the shutdown bound
(SHUTDOWN_TIMEOUT_S), then hands the signal on:

- to the app's Python handler, if it had set one;
- SIGINT with Python's own handler (`signal.default_int_handler`: Ctrl-C raises KeyboardInterrupt) is left to
  Python until the exit delivery begins: `asyncio.run` installs its graceful Ctrl-C (cancel the main task) only over
  that very handler, and a KeyboardInterrupt ends the program through the exit hooks, which deliver the queue. From
  the start of that delivery (`before_exit_delivery`) lmscope's handler takes SIGINT too, so a Ctrl-C pressed during
  it waits for it;
- for the default action (SIG_DFL), after a full shutdown that writes the usual drop-report line, by restoring
  SIG_DFL and raising the signal again: the process dies by it, with the exit status it would have had.

A handler runs in the main thread between two bytecodes, possibly inside lmscope's own span bookkeeping, holding
a lock the flush needs. It then does not wait for itself: it sends the signal again a moment later (`_RETRY_S`),
once that short critical section is over. Nor does it cut short a shutdown already delivering the queue (the
exit hooks of a `multiprocessing` worker, which `Pool.terminate()`, and so `with Pool() as pool:`, sends SIGTERM to
while they run): that shutdown sends the signal again when it ends (at the latest after `_SHUTDOWN_WAIT_S`), and
only then does it end the process. `uninstrument` restores the previous handlers if ours are still set.

A delivery the handler runs itself is bounded too, whatever it waits on: a watchdog sends the signal again after
`_SHUTDOWN_WAIT_S`. Python runs that handler on top of the stuck one (it runs handlers inside the main thread's lock
waits), which then hands the signal on at once. Without it, a lock the flush needs and `locks` did not list, held
by the interrupted code, left the process waiting for itself for good: one of the three causes of the
`with Pool() as pool:` hang (README, Signals), a worker that `terminate()` signalled while its exit hook held the
registry's lock (which `locks` lists now).

A signal whose default action lmscope stands in for must end the process as that action would, but a Python
handler, unlike the kernel's default action, can miss it (the other two causes of that hang, the commoner ones):
- a child forked a moment before the signal came drops it (CPython clears the signals it has not handled yet right
  after the fork): `ForkGuard` keeps these signals blocked across the fork, until the child is set up;
- a main thread on its way into a wait as the signal came stays in that wait: in `multiprocessing` children, where
  `Pool.terminate()` makes this likely (its workers go back to the task queue's lock, which the parent then holds
  for good), `SignalWatch` sends the signal again to the main thread when the handler did not begin within 0.1 s.
  In other processes the race is CPython's own, as with any Python handler (the app's, or SIGINT's
  KeyboardInterrupt): lmscope leaves their wakeup fd (`signal.set_wakeup_fd`) to the app.
Signals handed on to an app's handler are not watched: running that handler once more would not be harmless.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Protocol

from .telemetry._batch_export import SHUTDOWN_TIMEOUT_S
from .telemetry._fork import in_multiprocessing_children
from .telemetry._internal_errors import guarded
from .telemetry._thread_signals import ForkGuard, SignalLater, SignalWatch
from .telemetry._tracer_provider import before_exit_delivery

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_RETRY_S = 0.002
_MAX_RETRIES = 500
"""About a second of retries (more while a lock stays taken: each look waits for it 50 ms); past that the delivery
is tried anyway, bounded by its watchdog."""
_SHUTDOWN_WAIT_S = SHUTDOWN_TIMEOUT_S + 2.0
"""A shutdown under way ends within its own bound, its exporters' close included; past that the signal goes on."""


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


class SignalFlush:
    """What the handler needs from an active instrumentation."""

    def __init__(self, flush: Callable[[], object], shutdown: Callable[[], object],
                 locks: Callable[[], Sequence[_Lock]], shutting_down: Callable[[], bool],
                 call_after_shutdown: Callable[[Callable[[], object]], bool]) -> None:
        self.flush = flush
        """Deliver what is queued, within the shutdown bound; the app goes on afterwards."""
        self.shutdown = shutdown
        """Deliver within the bound, close the exporters and write the drop report: the process is about to die."""
        self.locks = locks
        """The locks the flush takes, which the interrupted main thread may hold."""
        self.shutting_down = shutting_down
        """True while a shutdown begun elsewhere (an exit hook, `uninstrument`) is delivering the queue."""
        self.call_after_shutdown = call_after_shutdown
        """Run a function when that shutdown ends; False when none is under way. Takes no lock."""


_lock = threading.Lock()
_previous: dict[int, Handler] = {}
_target: SignalFlush | None = None
_retries = 0
_deferred: dict[int, tuple[float, SignalLater]] = {}
"""Signals waiting for a shutdown under way to end: since when, and the timer that sends them if it never does."""
_delivering: dict[int, SignalLater] = {}
"""Signals whose handler is delivering spans now, with the delivery's watchdog: a handler run on top of it is the
same signal again, or that watchdog's once it fired."""
_handed_on: set[int] = set()
"""Signals a handler on top of a stuck delivery handed on already: the delivery, if it ever ends, does not again."""
_begun: dict[int, float] = {}
"""When the handler last began, by signal (`_unhandled`)."""
_watching_children = False


def install(target: SignalFlush) -> None:
    """Flush on SIGTERM and SIGINT for `target`. Only from the main thread (Python allows no other), and never
    over an ignored signal or a handler set outside Python (it could not be handed on)."""
    global _target, _watching_children
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        _target = target
        if not _watching_children:
            _watching_children = True
            in_multiprocessing_children(_watch_in_multiprocessing_child)
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current is _handle or current is None or current == signal.SIG_IGN:
                continue
            if signum == signal.SIGINT and current is signal.default_int_handler:
                _take_sigint_at_exit()  # left to Python (and asyncio.run) until then: see the module docstring
                continue
            _previous[signum] = current
            signal.signal(signum, _handle)
        if _in_a_multiprocessing_child():
            _watch_in_multiprocessing_child()


_sigint_at_exit = False


def _take_sigint_at_exit() -> None:
    global _sigint_at_exit
    if not _sigint_at_exit:
        _sigint_at_exit = True
        before_exit_delivery(_guard_the_exit_delivery)


def _guard_the_exit_delivery() -> None:
    """At exit, before the queue is delivered: SIGINT, if Python's own handler still has it, is lmscope's now."""
    if _target is None or threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            _previous[signal.SIGINT] = signal.default_int_handler
            signal.signal(signal.SIGINT, _handle)


def uninstall() -> None:
    """Put back the handlers `install` replaced, where ours is still the one set."""
    global _target
    with _lock:
        _target = None
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works only there; our handler, left set, just hands signals on
        for signum, previous in list(_previous.items()):
            if signal.getsignal(signum) is _handle:
                signal.signal(signum, previous)
            del _previous[signum]


def _locks_free(target: SignalFlush) -> bool:
    """False when a lock the flush needs stays taken: most likely by the very thread this handler interrupted."""
    for lock in target.locks():
        if not lock.acquire(timeout=0.05):
            return False
        lock.release()
    return True


def _sent_again_later(target: SignalFlush, signum: int) -> bool:
    """True when the flush cannot run now and the signal will come back on its own (see the module docstring)."""
    global _retries
    if _waits_for_shutdown(target, signum):
        return True
    if _retries < _MAX_RETRIES and not _locks_free(target):
        _retries += 1
        SignalLater(_RETRY_S, signum).start()
        return True
    _retries = 0
    return False


def _waits_for_shutdown(target: SignalFlush, signum: int) -> bool:
    deferred = _deferred.get(signum)
    if deferred is None:
        if not target.call_after_shutdown(functools.partial(os.kill, os.getpid(), signum)):
            return False
        # In case the shutdown ends on another thread just before it took our function, or never ends.
        fallback = SignalLater(_SHUTDOWN_WAIT_S, signum)
        _deferred[signum] = (time.monotonic(), fallback)
        # Python 3.12+ starts no thread once the interpreter is finalizing: the shutdown's own call still comes.
        with contextlib.suppress(RuntimeError):
            fallback.start()
        return True
    since, fallback = deferred
    if target.shutting_down() and time.monotonic() - since < _SHUTDOWN_WAIT_S:
        return True  # the same signal again while it runs: the shutdown's end sends it once more
    del _deferred[signum]
    fallback.cancel()  # a SIGINT the app survives must not come back later
    return False


def _handle(signum: int, frame: FrameType | None) -> None:
    _begun[signum] = time.monotonic()
    previous = _previous.get(signum, signal.SIG_DFL)
    target = _target
    watchdog = _delivering.get(signum)
    if watchdog is not None:
        if not watchdog.fired:
            return  # the same signal again: handed on when the delivery ends, or by its watchdog
        _handed_on.add(signum)  # the delivery is stuck (the interrupted code holds what it waits for): go on
    elif target is not None:
        if _sent_again_later(target, signum):
            return
        if _deliver(target, signum, dying=previous == signal.SIG_DFL):
            return  # a handler run on top of the stuck delivery handed the signal on already
    if previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)  # dies here, as it would have without lmscope
        return
    if callable(previous):
        previous(signum, frame)


def _deliver(target: SignalFlush, signum: int, *, dying: bool) -> bool:
    """Deliver the queue, for at most `_SHUTDOWN_WAIT_S` (see the module docstring); True when the signal was
    handed on meanwhile, by the handler its watchdog ran."""
    watchdog = _delivering[signum] = SignalLater(_SHUTDOWN_WAIT_S, signum)
    try:
        with contextlib.suppress(RuntimeError):  # Python 3.12+ starts no thread once the interpreter is finalizing
            watchdog.start()
        if dying:
            guarded("delivering spans before the process ends on a signal", target.shutdown)
        else:
            guarded("delivering spans on a signal", target.flush)
    finally:
        watchdog.cancel()
        del _delivering[signum]
        handed_on = signum in _handed_on
        _handed_on.discard(signum)
    return handed_on


def _standing_in_for_default() -> frozenset[int]:
    """The signals whose default action lmscope's handler stands in for now."""
    return frozenset(signum for signum, previous in list(_previous.items())
                     if previous == signal.SIG_DFL and signal.getsignal(signum) is _handle)


def _unhandled(signum: int, came_at: float) -> bool:
    """For `SignalWatch`: True when `signum` came (at `came_at`) for the default action and nothing will end the
    process on its own: the handler has not begun since, and waits for no delivery or shutdown under way. Sending
    such a signal again at worst runs the handler once more, which only finds it on its way already."""
    return (signum in _standing_in_for_default() and _begun.get(signum, -1.0) < came_at
            and signum not in _delivering and signum not in _deferred)


_WATCH = SignalWatch(_unhandled)
_FORK_GUARD = ForkGuard(_standing_in_for_default)


def _in_a_multiprocessing_child() -> bool:
    """True in a `multiprocessing` child of any start method. A forked one is watched from its start
    (`in_multiprocessing_children`); a spawned one, or one the forkserver forked, instruments itself anew (when it
    imports the app's main module, `_inheriting`, or later) and is watched from there."""
    process = sys.modules.get("multiprocessing.process")  # not imported here: an app that has none is no child
    if process is None:
        return False
    return process.parent_process() is not None or bool(getattr(process.current_process(), "_inheriting", False))


def _watch_in_multiprocessing_child() -> None:
    if _standing_in_for_default():
        _WATCH.arm()


def _after_fork_in_child() -> None:
    # The parent's deliveries and deferrals are on the stack of a thread the child does not have (it was forked by
    # another one), and their timers did not come along: kept, they made the child drop these signals for good.
    _delivering.clear()
    _handed_on.clear()
    _deferred.clear()
    _WATCH.forget_after_fork()
    _FORK_GUARD.release()  # a signal sent to the child meanwhile comes in now, and its handler runs


if hasattr(os, "register_at_fork"):  # after _fork's own hook (imported above): the child is set up when it runs
    os.register_at_fork(before=_FORK_GUARD.before_fork, after_in_parent=_FORK_GUARD.release,
                        after_in_child=_after_fork_in_child)
