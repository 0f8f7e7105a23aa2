"""Faults inside lmscope never reach the user's program; in lmscope's own tests they fail the test that caused them.

Every hook body runs behind `guarded` or reports through `report_internal_error`: in an app, an exception is
logged once per place (so a broken hook on a hot path does not flood the log) and the program goes on with its
own result untouched. While a test of lmscope's own suite runs, the same exception is re-raised instead, as
Logfire's `handle_internal_errors` does: a swallowed fault would only show as a missing attribute that no assertion
looks at. Logfire re-raises in every pytest run; lmscope only where `LMSCOPE_RAISE_INTERNAL_ERRORS=1` says so
(tests/conftest.py sets it, and the apps its tests start inherit it): an app's own test suite is the app too, and
one that runs its program with lmscope on (and a `MagicMock` for a response, as DSPy's own tests do) must not fail
on a fault of lmscope's. The tests that force a fault on purpose, to check what a user would get, turn re-raising
off with the `swallow_internal_errors` fixture of tests/conftest.py.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from typing import Final, TypeVar

logger = logging.getLogger("lmscope")
_reported: set[str] = set()

RAISE_VARIABLE: Final = "LMSCOPE_RAISE_INTERNAL_ERRORS"
"""Set to 1 by lmscope's own test suite: re-raise internal faults while a pytest test runs."""
reraise_under_pytest: bool = True
"""Re-raise internal faults while a test of lmscope's runs. Only tests set it (to False, for one test at a time)."""

T = TypeVar("T")


def _running_a_test() -> bool:
    # Logfire's check: pytest sets PYTEST_CURRENT_TEST only while a test's setup, call or teardown runs.
    # `"pytest" in sys.modules` would also catch an app that merely imports pytest, and code run at
    # collection or at exit, where a re-raised fault fails no test and only breaks the run.
    return os.environ.get(RAISE_VARIABLE) == "1" and bool(os.environ.get("PYTEST_CURRENT_TEST"))


def report_internal_error(where: str, exc: BaseException) -> None:
    """Log `exc` once for `where`; re-raise it instead while a test of lmscope's runs (see the module docstring).

    Call it from the `except` block that caught `exc`, so a re-raised fault keeps its traceback.
    """
    if reraise_under_pytest and _running_a_test():
        raise exc
    if where in _reported:
        return
    _reported.add(where)
    if where in _HOLDS_VALUES:
        _log_without_message(where, exc)
        return
    # The exception may quote what the program handled (a request, a provider's reply): its text and traceback go
    # out scrubbed, never as `exc_info`, which a handler would format verbatim.
    from ._scrub import scrub_error_text

    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.warning("lmscope: internal error in %s (telemetry for this step is incomplete): %s\n%s", where,
                   scrub_error_text(repr(exc)), scrub_error_text(details).rstrip())


_HOLDS_VALUES = frozenset({"scrub_callback"})
"""Places whose exception was raised by the app's code about a value lmscope was about to redact (the app's
`scrub_callback` is asked about a password): its message may quote that value, in any form no scrubbing rule
knows (`cannot decide about 'hunter2'`). Their log line keeps the exception's type, the function that raised and
where, never the message (nor a chained exception's)."""


def _log_without_message(where: str, exc: BaseException) -> None:
    stack = traceback.extract_tb(exc.__traceback__)  # file, line, function and source line: no values
    # The first frame is lmscope's, which called the app's function: the next one is that function's.
    caller = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    code = caller.tb_frame.f_code if caller is not None else None
    function = getattr(code, "co_qualname", code.co_name) if code is not None else "?"  # co_qualname: 3.11+
    logger.warning("lmscope: internal error in %s (telemetry for this step is incomplete): %s raised %s (message "
                   "not logged: it may quote the value being redacted, which was redacted)\n%s", where, function,
                   type(exc).__qualname__, "".join(traceback.format_list(stack)).rstrip())


def guarded(where: str, fn: Callable[..., T], *args: object, default: T | None = None) -> T | None:
    """Call `fn(*args)`; on any exception report it (see `report_internal_error`) and return `default`."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - this is the one place that must catch everything
        report_internal_error(where, exc)
        return default
