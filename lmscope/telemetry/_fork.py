"""Fork safety: a forked child starts lmscope's export machinery afresh instead of inheriting it locked.

`os.fork` copies the memory of the whole process but only the thread that forked. A lock another thread held at
that moment (an export worker writing a batch, a producer queueing a span) stays held in the child forever, and
the child's first span or flush would wait on it. So every object of lmscope that owns a lock, an event or a
worker thread registers here; in the child, right after the fork, each gets fresh ones (`after_fork_in_child`),
and export workers start again on first use. The parent's queued spans stay the parent's: it exports them.

One `os.register_at_fork` hook per process, over a WeakSet: registering never keeps a processor alive. No
`before` hook takes the locks ahead of the fork, as the SDK's own processors do not either: nothing a lock
guarded is carried into the child (its queue, counts and flush requests start empty), so waiting for the
parent's threads to let go of them would only delay the app's fork.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

from ._internal_errors import guarded


class ForkAware(Protocol):
    def after_fork_in_child(self) -> None:
        """Replace every lock, event and thread this object holds; only the forking thread runs in the child."""


_LIVE: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def renew_after_fork(obj: ForkAware) -> None:
    """Have `obj.after_fork_in_child()` run in every child forked from now on, while `obj` is alive."""
    _LIVE.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_LIVE):
        guarded("renewing locks after a fork", obj.after_fork_in_child)


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
