"""The OpenAI SDK's own retries beneath LiteLLM: each request it sends again is a span of its own.

LiteLLM reaches OpenAI-compatible providers (chat and text completions, embeddings) through the `openai` SDK, whose
client sends a failed request again itself (a 408, 409, 429 or 5xx answer, a timeout, a lost connection), up to its
`max_retries`: the call's `num_retries` when given, else 2, LiteLLM's default for OpenAI (docs/litellm-internals.md
§6). One LiteLLM call may so be several provider requests. Between a failed request and the next the SDK calls its
client's `_sleep_for_retry`: lmscope ends the call's span there, failed, as that request's, and after the backoff
opens the span of the next request (`LiteLLMRuntime.request_failed` / `resent`). The last request's span is the one
LiteLLM's result or error ends. Inside DSPy's own request, whose LiteLLM call has no span, the failed request is an
event on the DSPy LM span, which counts the call's requests (`dspy/_retries.py`). Outside a traced call the SDK's
retries are left alone.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._stack import WrappedCall
from ..dspy._frames import current_lm_frame
from ..dspy._retries import request_resent
from ._spans import CallFrame, LiteLLMRuntime

METHOD = "_sleep_for_retry"
"""The SDK client's method called between a failed request and the next (`openai/_base_client.py`, `request`)."""


def sdk_clients() -> list[tuple[type, bool]]:
    """The OpenAI SDK's base client classes that define `METHOD`: (class, async)."""
    from openai import _base_client

    found = []
    for name, is_async in (("SyncAPIClient", False), ("AsyncAPIClient", True)):
        client = getattr(_base_client, name, None)
        if isinstance(client, type) and METHOD in vars(client):
            found.append((client, is_async))
    return found


def failed_request(client: Any, response: Any, handled: BaseException | None) -> BaseException | None:
    """What the SDK would raise for the failed request had it not sent it again: for an answer, its status error
    (`InternalServerError`, `RateLimitError`, ...); without one, the transport's error it catches (a timeout, a
    refused connection)."""
    if response is not None:  # built as the SDK builds the error it raises (the response's body was read)
        error: BaseException = client._make_status_error_from_response(response)
        return error
    return handled


class _Backoff(WrappedCall):
    """Around the SDK's wait before it sends a failed request again: `with _Backoff(...): original(...)`. Entering
    ends the failed request's span; leaving opens the next request's (also when the wait is interrupted: the call's
    error then ends that span)."""

    __slots__ = ("frame", "runtime")

    def __init__(self, runtime: LiteLLMRuntime, client: Any, kwargs: dict[str, Any],
                 wrapper: Callable[..., Any]) -> None:
        super().__init__(wrapper)
        self.runtime = runtime
        self.frame = _request_failed(runtime, client, kwargs.get("response"))

    def leaving(self, error: BaseException | None) -> None:
        if self.frame is not None:
            try:
                self.runtime.resent(self.frame)
            except Exception as exc:  # noqa: BLE001 - the request is sent all the same
                report_internal_error("tracing a request the OpenAI SDK sends again", exc)


def _request_failed(runtime: LiteLLMRuntime, client: Any, response: Any) -> CallFrame | None:
    """End the span of the request that failed; the call whose next request needs a span (None: no traced LiteLLM
    call is running here, or its failure cannot be read)."""
    try:
        frame = runtime.current_call()
        if frame is None:
            _dspy_request_failed(runtime, client, response)
            return None
        error = failed_request(client, response, sys.exc_info()[1])
        if error is None:
            return None
        runtime.request_failed(frame, error)
        return frame
    except Exception as exc:  # noqa: BLE001 - the SDK retries untraced, inside the call's one span
        report_internal_error("tracing a request the OpenAI SDK sends again", exc)
        return None


def _dspy_request_failed(runtime: LiteLLMRuntime, client: Any, response: Any) -> None:
    """Inside a DSPy LM call (its LiteLLM engine, where LiteLLM's own spans stand down) the request that failed is an
    event on the DSPy LM span, which counts it (`dspy/_retries.py`); outside any traced call, nothing."""
    frame = current_lm_frame()
    error = failed_request(client, response, sys.exc_info()[1]) if frame is not None else None
    if frame is not None and error is not None:
        request_resent(frame, error, runtime.content)


def traced_backoff(runtime: LiteLLMRuntime, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(client: Any, *args: Any, **kwargs: Any) -> Any:
        with _Backoff(runtime, client, kwargs, wrapper):
            return original(client, *args, **kwargs)

    return wrapper


def traced_async_backoff(runtime: LiteLLMRuntime, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(client: Any, *args: Any, **kwargs: Any) -> Any:
        with _Backoff(runtime, client, kwargs, wrapper):
            return await original(client, *args, **kwargs)

    return wrapper
