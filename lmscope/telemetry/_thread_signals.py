"""lmscope's own threads take no process signal: SIGTERM, SIGINT and the like reach a thread of the app's.

The kernel hands a signal sent to the process to any one thread that does not block it, and Python runs a signal's
handler only in the main thread, between two bytecodes: a signal that lands on another thread while the main thread
waits in C is noticed only when that wait ends. A `multiprocessing` worker waits on its task queue's lock, which
`Pool.terminate()` takes and never gives back before it sends the worker SIGTERM: without lmscope the worker has no
other thread, so the signal lands on the main thread and ends its wait. So every thread lmscope starts blocks these
signals first, and the kernel picks one of the app's. A signal can still come too early for the main thread's wait
to notice it, or for a just-forked child to keep it: `SignalWatch` and `ForkGuard` below, used by lmscope/_signals.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Final

_PROCESS_SIGNALS: Final = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                                       "SIGCHLD") if hasattr(signal, name))
"""Signals sent to a whole process; not the ones a fault sends to the faulting thread (SIGSEGV, SIGPIPE, ...)."""


def block_process_signals() -> None:
    """Call first in a thread lmscope starts: process signals go to the app's threads (POSIX; a no-op elsewhere)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)


class SignalLater(threading.Thread):
    """Sends `signum` to this process after `delay` seconds, unless cancelled first; from a thread that blocks
    process signals, so the signal it sends lands on one of the app's."""

    def __init__(self, delay: float, signum: int) -> None:
        super().__init__(name="lmscope-signal-later", daemon=True)
        self.delay = delay
        self.signum = signum
        self.fired = False
        """True from just before it sends the signal."""
        self._cancelled = threading.Event()

    def run(self) -> None:
        block_process_signals()
        if not self._cancelled.wait(self.delay):
            self.fired = True
            os.kill(os.getpid(), self.signum)

    def cancel(self) -> None:
        self._cancelled.set()


class SignalWatch:
    """Makes sure the Python handler of a signal runs even when the main thread was entering a wait as it came.

    CPython's C handler only notes a signal; its Python handler runs at the main thread's next bytecode, and a wait
    the main thread is blocked in ends early for it (EINTR, then PEP 475 runs the handler). A signal that comes while
    the main thread is on its way into a wait (past its last bytecode, before the system call; or a semaphore wait
    that woke and goes back to sleep because another process took the semaphore first) interrupts nothing: the
    handler waits until that wait ends, which may be never. A `multiprocessing.Pool` worker that `terminate()`
    signals as it goes back to the task queue (whose lock the parent holds for good by then) so stays.

    `arm` has CPython also write each signal's number to a pipe (`signal.set_wakeup_fd`, unless the app set one),
    which a thread of its own reads: when `unhandled(signum, came_at)` still says so `GRACE_S` later, it sends the
    signal to the main thread itself (`pthread_kill`), which breaks its wait, and the handler runs.
    """

    GRACE_S = 0.1

    def __init__(self, unhandled: Callable[[int, float], bool]) -> None:
        self._unhandled = unhandled
        self._fds: tuple[int, int] | None = None

    def arm(self) -> bool:
        """From the main thread; False when armed already, or when the app set a wakeup fd (it keeps it)."""
        if self._fds is not None or not hasattr(signal, "pthread_kill"):
            return False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):  # not the main thread
            previous = None
        if previous != -1:
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return False
        self._fds = (read_fd, write_fd)
        threading.Thread(target=self._watch, args=(read_fd,), name="lmscope-signal-watch", daemon=True).start()
        return True

    def forget_after_fork(self) -> None:
        """In a forked child: the wakeup fd it inherited is its parent's, whose watch would take this child's signals
        for its own. Unset it (if it is still ours) before the child's signals can come in (`fork_guard`)."""
        fds, self._fds = self._fds, None
        if fds is None:
            return
        with contextlib.suppress(ValueError, OSError):
            current = signal.set_wakeup_fd(-1)
            if current not in (-1, fds[1]):
                signal.set_wakeup_fd(current)  # the app's since: it keeps it
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _watch(self, read_fd: int) -> None:
        block_process_signals()
        while True:
            try:
                came = os.read(read_fd, 64)
            except OSError:
                return
            if not came:
                return
            came_at = time.monotonic()
            time.sleep(self.GRACE_S)
            for signum in set(came):
                if self._unhandled(signum, came_at):
                    main = threading.main_thread().ident
                    if main is not None:
                        with contextlib.suppress(OSError):
                            signal.pthread_kill(main, signum)


class ForkGuard:
    """Holds `signals()` blocked in the forking thread while it forks, and in the child until `release`.

    A signal that reaches a child before CPython's own after-fork work is dropped by it (`_PySignal_AfterFork`
    clears the signals noted but not handled yet): `Pool.terminate()` on a worker forked a moment earlier, which a
    loaded machine has not run yet, sent one that its handler never saw. Blocked, it stays pending and comes in at
    `release`, once CPython and lmscope have set the child up: the handler then runs at once.
    """

    def __init__(self, signals: Callable[[], frozenset[int]]) -> None:
        self._signals = signals
        self._blocked = threading.local()

    def before_fork(self) -> None:
        signals = self._signals() if hasattr(signal, "pthread_sigmask") else frozenset()
        if signals:
            self._blocked.signals = signals - signal.pthread_sigmask(signal.SIG_BLOCK, signals)

    def release(self) -> None:
        """After the fork, in the parent and in the child (last of lmscope's after-fork work there)."""
        signals = getattr(self._blocked, "signals", None)
        self._blocked.signals = None
        if signals:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
