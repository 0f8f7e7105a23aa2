"""The traced replacements of LiteLLM's module functions: one span per call, the call itself unchanged."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ...telemetry._internal_errors import report_internal_error
from .._stack import WrappedCall, drop_own_frame
from ._context_window import watch_fallbacks
from ._in_dspy_lm import DSPyRequest
from ._responses_stream import ResponsesStreamRecorder
from ._results import from_litellm_cache
from ._spans import CallFrame, LiteLLMRuntime
from ._streams import StreamRecorder, traced_stream


def _request(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's keyword view: its positional arguments under their parameter `names`, then the keywords."""
    if not args:
        return kwargs
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _start(runtime: LiteLLMRuntime, operation: str, names: tuple[str, ...], args: tuple[Any, ...],
           kwargs: dict[str, Any], litellm_prices: bool, is_async: bool) -> CallFrame | DSPyRequest | None:
    try:
        frame = runtime.start(operation, _request(names, args, kwargs), litellm_prices, is_async)
        if isinstance(frame, CallFrame):
            watch_fallbacks(runtime, kwargs)
        return frame
    except Exception as exc:  # noqa: BLE001 - the call runs untraced
        report_internal_error("LiteLLM span start", exc)
        return None


def _returned(runtime: LiteLLMRuntime, frame: CallFrame | DSPyRequest, result: Any) -> Any:
    if isinstance(frame, DSPyRequest):  # DSPy's own request: its DSPy LM span has the result
        frame.leave()
        return result
    runtime.leave(frame)
    if frame.handed_over:  # the last of LiteLLM's retries answered: its span has it (a stream is traced there)
        return result
    runtime.answered_by(frame, result)
    if frame.kwargs.get("stream") is True and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        recorder = (ResponsesStreamRecorder if frame.responses_api else StreamRecorder)(runtime, frame)
        recorder.from_cache = from_litellm_cache(result)
        return traced_stream(result, recorder)
    runtime.end(frame, result, None)
    return result


def _failed(runtime: LiteLLMRuntime, frame: CallFrame | DSPyRequest | None, error: BaseException,
            wrapper: Callable[..., Any]) -> None:
    """LiteLLM raised `error`: take `wrapper`'s frame off the traceback, traced or not (a call inside another LiteLLM
    span or `suppress_instrumentation()` runs untraced through the same wrapper), so the bare `raise` that follows
    gives the program the traceback it gets without lmscope; then end the span (if the call had one), which so
    records that same traceback."""
    drop_own_frame(error, wrapper)
    if isinstance(frame, DSPyRequest):
        frame.leave()
    elif frame is not None:
        runtime.leave(frame)
        if not frame.handed_over:  # else the retries' spans have recorded their errors
            runtime.end(frame, None, error)


def traced_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                names: tuple[str, ...], litellm_prices: bool = True) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        live = runtime.current()
        frame = _start(live, operation, names, args, kwargs, litellm_prices, is_async=False)
        try:
            result = original(*args, **kwargs)
        except BaseException as error:
            _failed(live, frame, error, wrapper)
            raise
        return result if frame is None else _returned(live, frame, result)

    return wrapper


def traced_async_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                      names: tuple[str, ...], litellm_prices: bool = True) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        live = runtime.current()
        frame = _start(live, operation, names, args, kwargs, litellm_prices, is_async=True)
        try:
            result = await original(*args, **kwargs)
        except BaseException as error:
            _failed(live, frame, error, wrapper)
            raise
        return result if frame is None else _returned(live, frame, result)

    return wrapper


class _Attempts(WrappedCall):
    """Around a call of `completion_with_retries` or kin: `with _Attempts(...): original(*args, **kwargs)`. Gives the
    helper its attempt function, traced, unless the caller chose its own (`original_function=`). When it is LiteLLM
    retrying a traced call itself (`LiteLLMRuntime.retried_call`), LiteLLM's own function is traced instead (its
    async path passes the undecorated `acompletion` / `aresponses`) and the call is handed over: its span ends as
    the failed first attempt's, the attempts run in the caller's context. Leaving puts the call's context back."""

    __slots__ = ("token",)

    def __init__(self, runtime: LiteLLMRuntime, kwargs: dict[str, Any], attempt: Callable[..., Any],
                 trace: Callable[[Callable[..., Any]], Callable[..., Any]], wrapper: Callable[..., Any]) -> None:
        super().__init__(wrapper)
        runtime = runtime.current()
        self.token = _hand_over(runtime)
        given = kwargs.get("original_function")
        if self.token is None or given is None:
            kwargs.setdefault("original_function", attempt)
        else:
            kwargs["original_function"] = trace(given)

    def leaving(self, error: BaseException | None) -> None:
        if self.token is not None:
            otel_context.detach(self.token)


def _hand_over(runtime: LiteLLMRuntime) -> Token[Context] | None:
    """Hand over the traced call LiteLLM is retrying (`LiteLLMRuntime.hand_over`); the token that puts its context
    back, or None: no such call here."""
    try:
        retried = runtime.retried_call()
        return None if retried is None else runtime.hand_over(*retried)
    except Exception as exc:  # noqa: BLE001 - the retries run untraced, inside the call's span
        report_internal_error("tracing LiteLLM's retries", exc)
        return None


def with_traced_attempts(original: Callable[..., Any], runtime: LiteLLMRuntime, attempt: Callable[..., Any],
                         trace: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[..., Any]:
    """`completion_with_retries` and its kin, each attempt traced: they call LiteLLM's function through a reference
    of their own (`original_function=`, by default `litellm.main.completion`, not the patched package attribute;
    docs/litellm-internals.md §6). Unless the caller chose that function, they are given `attempt`: the very same
    default function, traced (`trace` traces the function LiteLLM's own retry path gives). Nothing else changes,
    and the retrying itself has no span: one span per attempt (`_Attempts`)."""
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Attempts(runtime, kwargs, attempt, trace, async_wrapper):
                return await original(*args, **kwargs)

        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _Attempts(runtime, kwargs, attempt, trace, wrapper):
            return original(*args, **kwargs)

    return wrapper


def in_callers_context(original: Callable[..., Any]) -> Callable[..., Any]:
    """LiteLLM's `run_async_function` as the sync `completion` reaches it with fallbacks: it runs the fallbacks in a
    new event loop, in a thread of its own when a loop already runs in this one, where the caller's context (its
    span, `track()`) is not current. The traced `acompletion` calls there must find it: the coroutine runs in the
    context of the caller. Neither wrapper's frame stays in a traceback (`drop_own_frame`)."""
    @functools.wraps(original)
    def wrapper(async_function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        caller = otel_context.get_current()

        async def in_context(*inner_args: Any, **inner_kwargs: Any) -> Any:
            token = otel_context.attach(caller)
            try:
                return await async_function(*inner_args, **inner_kwargs)
            except BaseException as error:
                drop_own_frame(error, in_context)
                raise
            finally:
                otel_context.detach(token)

        try:
            return original(in_context, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper
