"""Faults inside lmscope never reach the user's program.

Every hook body runs behind `guarded`: an exception is logged once per place (so a broken hook on a hot
path does not flood the log) and the program goes on with its own result untouched.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

logger = logging.getLogger("lmscope")
_reported: set[str] = set()

T = TypeVar("T")


def report_internal_error(where: str, exc: BaseException) -> None:
    if where in _reported:
        return
    _reported.add(where)
    logger.warning("lmscope: internal error in %s (telemetry for this step is incomplete): %r", where, exc,
                   exc_info=exc)


def guarded(where: str, fn: Callable[..., T], *args: object, default: T | None = None) -> T | None:
    """Call `fn(*args)`; on any exception report it and return `default`."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - this is the one place that must catch everything
        report_internal_error(where, exc)
        return default
