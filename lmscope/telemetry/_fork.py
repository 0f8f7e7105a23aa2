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

A `multiprocessing` child forked from the app (a `Process`, a `Pool` or `ProcessPoolExecutor` worker) ends with
`os._exit` once its target returns, past every `atexit` hook, so the exit hooks that deliver its queued spans would
never run and its spans would be lost. It runs the finalizers of `multiprocessing.util` instead
(`Process._bootstrap` calls `util._exit_function`, after clearing the parent's finalizers and running the functions
given to `util.register_after_fork`): in such a child the hooks of `run_at_exit` run there too, and those of
`in_multiprocessing_children` run before its target. The `before` hook only hands that function to
`multiprocessing.util` when the app has imported it (lmscope never imports it: ~15 ms).
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Callable
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


_EXIT_HOOKS: list[Callable[[], object]] = []
_EXIT_PRIORITY = -100
"""After the app's own `multiprocessing` finalizers (highest first; the default ones are >= 0), which may still
end spans."""
_CHILD_HOOKS: list[Callable[[], object]] = []
_handed_to_multiprocessing = False


def run_at_exit(hook: Callable[[], object]) -> None:
    """Run `hook` when this process exits normally (`atexit`), and when a `multiprocessing` child forked from it
    exits (see the module docstring)."""
    atexit.register(hook)
    _EXIT_HOOKS.append(hook)


def in_multiprocessing_children(hook: Callable[[], object]) -> None:
    """Run `hook` in every `multiprocessing` child forked from this process from now on (and from those children),
    in its main thread, before its target."""
    _CHILD_HOOKS.append(hook)


def _before_fork() -> None:
    """In the parent: once `multiprocessing` is loaded and there is something to run in its children, have its
    forked children run `_in_multiprocessing_child` (inherited by their own children)."""
    global _handed_to_multiprocessing
    util = sys.modules.get("multiprocessing.util")
    if util is None or _handed_to_multiprocessing or not (_EXIT_HOOKS or _CHILD_HOOKS):
        return
    _handed_to_multiprocessing = True
    # Held weakly by multiprocessing, and handed back: a module's function lives as long as the process.
    guarded("preparing multiprocessing children's exit", util.register_after_fork, _run_exit_hooks,
            _in_multiprocessing_child)


def _in_multiprocessing_child(run_exit_hooks: Callable[[], None]) -> None:
    """In a `multiprocessing` child, before its target runs: the exit hooks as one of its finalizers, then the
    hooks of `in_multiprocessing_children`."""
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, run_exit_hooks, exitpriority=_EXIT_PRIORITY)
    for hook in list(_CHILD_HOOKS):
        guarded("preparing a multiprocessing child", hook)


def _run_exit_hooks() -> None:
    for hook in list(_EXIT_HOOKS):
        guarded("delivering spans at the exit of a multiprocessing child", hook)


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
