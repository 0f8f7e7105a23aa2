"""The traced replacements of LiteLLM's module functions: one span per call, the call itself unchanged."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._stack import drop_own_frame
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
           kwargs: dict[str, Any]) -> CallFrame | None:
    try:
        return runtime.start(operation, _request(names, args, kwargs))
    except Exception as exc:  # noqa: BLE001 - the call runs untraced
        report_internal_error("LiteLLM span start", exc)
        return None


def _returned(runtime: LiteLLMRuntime, frame: CallFrame, result: Any) -> Any:
    runtime.leave(frame)
    runtime.answered_by(frame, result)
    if frame.kwargs.get("stream") is True and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        recorder = (ResponsesStreamRecorder if frame.responses_api else StreamRecorder)(runtime, frame)
        recorder.from_cache = from_litellm_cache(result)
        return traced_stream(result, recorder)
    runtime.end(frame, result, None)
    return result


def _failed(runtime: LiteLLMRuntime, frame: CallFrame | None, error: BaseException,
            wrapper: Callable[..., Any]) -> None:
    """LiteLLM raised `error`: take `wrapper`'s frame off the traceback, traced or not (a call inside another LiteLLM
    span or `suppress_instrumentation()` runs untraced through the same wrapper), so the bare `raise` that follows
    gives the program the traceback it gets without lmscope; then end the span (if the call had one), which so
    records that same traceback."""
    drop_own_frame(error, wrapper)
    if frame is not None:
        runtime.leave(frame)
        runtime.end(frame, None, error)


def traced_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                names: tuple[str, ...]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = _start(runtime, operation, names, args, kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as error:
            _failed(runtime, frame, error, wrapper)
            raise
        return result if frame is None else _returned(runtime, frame, result)

    return wrapper


def traced_async_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                      names: tuple[str, ...]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = _start(runtime, operation, names, args, kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as error:
            _failed(runtime, frame, error, wrapper)
            raise
        return result if frame is None else _returned(runtime, frame, result)

    return wrapper


def with_traced_attempts(original: Callable[..., Any], attempt: Callable[..., Any]) -> Callable[..., Any]:
    """`completion_with_retries` and its kin, each attempt traced: they call LiteLLM's function through a reference
    of their own (`original_function=`, by default `litellm.main.completion`, not the patched package attribute;
    docs/litellm-internals.md §6). Unless the caller chose that function, they are given `attempt`: the very same
    default function, traced. Nothing else changes, and the retrying itself has no span: one span per attempt."""
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("original_function", attempt)
            try:
                return await original(*args, **kwargs)
            except BaseException as error:
                drop_own_frame(error, async_wrapper)
                raise

        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("original_function", attempt)
        try:
            return original(*args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper
