"""Faults inside lmscope never reach the user's program; under pytest they fail the test that caused them.

Every hook body runs behind `guarded` or reports through `report_internal_error`: in an app, an exception is
logged once per place (so a broken hook on a hot path does not flood the log) and the program goes on with its
own result untouched. While a pytest test runs, the same exception is re-raised instead, as Logfire's
`handle_internal_errors` does: a swallowed fault would only show as a missing attribute that no assertion looks
at. The tests that force a fault on purpose, to check what a user would get, turn re-raising off with the
`swallow_internal_errors` fixture of tests/conftest.py.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("lmscope")
_reported: set[str] = set()

reraise_under_pytest: bool = True
"""Re-raise internal faults while a pytest test runs. Only tests set it (to False, for one test at a time)."""

T = TypeVar("T")


def _running_a_test() -> bool:
    # Logfire's choice: pytest sets PYTEST_CURRENT_TEST only while a test's setup, call or teardown runs.
    # `"pytest" in sys.modules` would also catch an app that merely imports pytest, and code run at
    # collection or at exit, where a re-raised fault fails no test and only breaks the run.
    return bool(os.environ.get("PYTEST_CURRENT_TEST"))


def report_internal_error(where: str, exc: BaseException) -> None:
    """Log `exc` once for `where`; re-raise it instead while a pytest test runs (see the module docstring).

    Call it from the `except` block that caught `exc`, so a re-raised fault keeps its traceback.
    """
    if reraise_under_pytest and _running_a_test():
        raise exc
    if where in _reported:
        return
    _reported.add(where)
    # The exception may quote what the program handled (a request, a provider's reply): its text and traceback go
    # out scrubbed, never as `exc_info`, which a handler would format verbatim.
    from ._scrub import scrub_error_text

    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.warning("lmscope: internal error in %s (telemetry for this step is incomplete): %s\n%s", where,
                   scrub_error_text(repr(exc)), scrub_error_text(details).rstrip())


def guarded(where: str, fn: Callable[..., T], *args: object, default: T | None = None) -> T | None:
    """Call `fn(*args)`; on any exception report it (see `report_internal_error`) and return `default`."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - this is the one place that must catch everything
        report_internal_error(where, exc)
        return default
