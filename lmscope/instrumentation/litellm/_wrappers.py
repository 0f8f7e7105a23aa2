"""The traced replacements of LiteLLM's module functions: one span per call, the call itself unchanged."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._stack import drop_own_frame
from ._spans import CallFrame, LiteLLMRuntime
from ._streams import traced_stream


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
    if frame.kwargs.get("stream") is True and hasattr(result, "__next__") and hasattr(result, "__anext__"):
        return traced_stream(result, runtime, frame)
    runtime.end(frame, result, None)
    return result


def traced_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                names: tuple[str, ...]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = _start(runtime, operation, names, args, kwargs)
        if frame is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as error:
            runtime.leave(frame)
            runtime.end(frame, None, error)
            drop_own_frame(error, wrapper)
            raise
        return _returned(runtime, frame, result)

    return wrapper


def traced_async_call(runtime: LiteLLMRuntime, original: Callable[..., Any], operation: str,
                      names: tuple[str, ...]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = _start(runtime, operation, names, args, kwargs)
        if frame is None:
            return await original(*args, **kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as error:
            runtime.leave(frame)
            runtime.end(frame, None, error)
            drop_own_frame(error, wrapper)
            raise
        return _returned(runtime, frame, result)

    return wrapper
