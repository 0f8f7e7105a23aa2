"""The provider requests of a DSPy LM call that failed and were sent again: visible on the call's one LM span.

A DSPy LM call is one LM span (its tokens, cost and roll-ups are those of the answer), but it may make several
provider requests: a request that fails transiently is sent again inside the call, at one of two levels
(docs/dspy-internals.md §4):
- DSPy 3.4's own loop (`execution.execute` / `aexecute`, both engines, one request per attempt), which waits
  `_delay(exc, attempt)` before each attempt it makes again: wrapped here (`retry_delay`);
- the OpenAI SDK beneath LiteLLM (DSPy 3.0-3.3 pass `num_retries` to LiteLLM, which makes it the SDK's `max_retries`),
  whose wait before a resend the LiteLLM instrumentation wraps (`litellm/_sdk_retries.py`): inside a DSPy LM span,
  where no LiteLLM span of its own runs, it reports here.
Each such request is an `exception` event on the span (type, message and traceback scrubbed as a call's error), and
the span says how many requests the call made (`lmscope.lm.requests`). The span's status and `error.type` stay
those of the call's outcome. A call whose first request is answered does no more than before: the hooks run only
between a failed request and the next.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...telemetry._content import ContentPolicy
from ...telemetry._internal_errors import report_internal_error
from .._errors import record_failed_request
from .._stack import drop_own_frame
from ._frames import LMFrame, current_lm_frame


def request_resent(frame: LMFrame, error: BaseException, policy: ContentPolicy) -> None:
    """A provider request of `frame`'s call failed with `error`, and the call sends it again."""
    frame.resent += 1
    record_failed_request(frame.span, error, policy)


def requests_made(frame: LMFrame, failed: bool) -> int:
    """Every provider request of a call whose requests were sent again: those, and the last attempt's (its failed
    request, or the answered ones: one per candidate the native engine asked for, `CallResult.responses`)."""
    if failed and frame.result is None:
        return frame.resent + 1
    responses = getattr(frame.result, "responses", None)
    return frame.resent + (len(responses) if isinstance(responses, (list, tuple)) and responses else 1)


def retry_delay(policy: ContentPolicy, original: Callable[..., Any]) -> Callable[..., Any]:
    """DSPy 3.4's `execution._delay(exc, attempt)`, called (looked up in its module) only when the call's attempt
    failed with `exc` and DSPy makes it again."""

    @functools.wraps(original)
    def wrapper(exc: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            frame = current_lm_frame()
            if frame is not None and isinstance(exc, BaseException):
                request_resent(frame, exc, policy)
        except Exception as error:  # noqa: BLE001 - the request is sent again all the same
            report_internal_error("a DSPy LM request sent again", error)
        try:
            return original(exc, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper
