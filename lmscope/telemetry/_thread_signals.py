"""lmscope's own threads take no process signal: SIGTERM, SIGINT and the like reach a thread of the app's.

The kernel hands a signal sent to the process to any one thread that does not block it, and Python runs a signal's
handler only in the main thread, between two bytecodes: a signal that lands on another thread while the main thread
waits in C is noticed only when that wait ends. A `multiprocessing` worker waits on its task queue's lock, which
`Pool.terminate()` takes and never gives back before it sends the worker SIGTERM: without lmscope the worker has no
other thread, so the signal lands on the main thread and ends its wait. So every thread lmscope starts blocks these
signals first, and the kernel picks one of the app's. (It does not end every such hang: README, "Known gaps".)
"""

from __future__ import annotations

import os
import signal
import threading
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
