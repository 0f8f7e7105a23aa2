"""DSPy's request made by the app's code: `dspy.LM.forward` / `aforward` called by a custom LM (`super().forward(...)`
in a `dspy.LM` subclass's own `forward`), or by the app directly.

DSPy's own LM call reaches `LM.forward` only from DSPy's code: on 3.0-3.3 `BaseLM.__call__` calls `self.forward`; on
3.4 a `dspy.LM` whose `forward` is DSPy's is run by its engine without it, and one whose `forward` is the app's is run
by DSPy's legacy engine, which calls that one (docs/dspy-internals.md §4). So a call of `LM.forward` whose caller, past
the wrappers, is neither of those (`_DSPY_CALLERS`), and which is not DSPy's call of an LM's inherited `forward` through
someone else's wrapper of it, is a request the app's code made: a DSPy LM span of its own,
counting what that request cost (its LiteLLM or native request, or DSPy's cache hit). Inside a custom LM's call it is
a child of that LM's span, which gives way to it and to the LM's other calls (`_lm_children.py`), so a custom LM that
mixes DSPy's request with LiteLLM calls of its own counts each request once, whichever answer it returns.

Such a request never reaches `finalize` (3.4) or `_process_lm_response` (3.0-3.3), where lmscope reads a call's
result: on 3.4 it is read where `LM.forward` gets it, from `execution.execute` / `aexecute`; on 3.0-3.3 `LM.forward`
returns the provider's response itself. A streamed request (`stream=True`, which DSPy hands to LiteLLM and whose stream
the app reads after `forward` returned) is passed straight through: LiteLLM's span counts it when the stream ends.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._callers import caller_module
from .._stack import WrappedCall, drop_own_frame
from ..litellm._responses import responses_answers
from ..litellm._results import answers
from ._frames import LMFrame, app_suppressed, current_lm_frame
from ._results import LegacyCall, LegacyResult
from ._runtime import Runtime

_DSPY_CALLERS = frozenset({"dspy.clients.base_lm", "dspy.clients.engines.legacy_engine"})
"""Where DSPy's own LM call calls `forward`: `BaseLM.__call__` / `acall` (3.0-3.3), `LegacyEngine` (3.4)."""


def forward_request(runtime: Runtime, original: Callable[..., Any], lm_class: type, base_class: type, *,
                    is_async: bool = False) -> Callable[..., Any]:
    """`LM.forward` / `LM.aforward` (`lm_class`: `dspy.LM`; `base_class`: `dspy.BaseLM`): a DSPy LM span when the
    app's code calls it; passed straight through when DSPy's own call does, under the app's suppression, and for a
    stream."""
    name, call_name = ("aforward", "acall") if is_async else ("forward", "__call__")
    # DSPy 3.0-3.3's `LM.forward` warns about `rollout_id` with `stacklevel=3`, which would blame this wrapper: the
    # wrapper runs DSPy's check first, from its own frame, so the warning blames its caller, as without lmscope.
    warns_itself = "_warn_zero_temp_rollout" in getattr(getattr(original, "__code__", None), "co_names", ())
    dspys_check = getattr(lm_class, "_warn_zero_temp_rollout", None)

    def may_warn(lm: Any) -> bool:
        """Whether to run DSPy's own check early: DSPy's (not a subclass's, which would run twice), not given yet (it
        does nothing else), and on an LM whose settings `forward` can read (else `forward` fails before it)."""
        return warns_itself and getattr(type(lm), "_warn_zero_temp_rollout", None) is dspys_check \
            and getattr(lm, "_warned_zero_temp_rollout", True) is False \
            and isinstance(getattr(lm, "kwargs", None), Mapping)

    def dspys_own_call(lm: Any, caller: FrameType | None) -> bool:
        frame = current_lm_frame()
        if frame is not None and frame.lm is lm and getattr(type(lm), name, None) is getattr(lm_class, name, None) \
                and getattr(type(lm), call_name, None) is getattr(base_class, call_name, None):
            return True  # DSPy's `self.forward` in this LM's own call, through someone else's wrapper of `LM.forward`
        return caller_module(caller) in _DSPY_CALLERS

    def begin(lm: Any, args: tuple[Any, ...], kwargs: dict[str, Any], caller: FrameType | None) -> LMFrame | None:
        try:
            if app_suppressed() or _streamed(lm, kwargs) or dspys_own_call(lm, caller):
                return None
            cache = bool(kwargs.get("cache", getattr(lm, "cache", True)))  # before the span: nothing may fail after
            frame = runtime.start_lm(lm, args, kwargs)
            # Marks a request made through `LM.forward` (`execute_result`), and says whether it asked for DSPy's cache
            # as `LM.forward` reads it; DSPy 3.4's own call replaces it.
            frame.call = LegacyCall(cache)
            if frame.outer is not None:
                frame.outer.forwarded = True
            return frame
        except Exception as exc:  # noqa: BLE001
            report_internal_error("DSPy request span start", exc)
            return None

    def finish(frame: LMFrame, response: Any, error: BaseException | None) -> None:
        """End the span: `response` is what `forward` returned (when `error` is None)."""
        outputs = None
        try:
            if error is None:
                if frame.result is None:  # DSPy 3.0-3.3: the provider's response is the call's result
                    frame.result = LegacyResult(response)
                outputs = _outputs(frame.result, response)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("DSPy request span end", exc)
        runtime.end_lm(frame, outputs, error)

    class Request(WrappedCall):
        """The block the original runs in: a span's frame to finish, or None for a call passed straight through."""

        __slots__ = ("frame", "response")

        def __init__(self, wrapper: Callable[..., Any]) -> None:
            super().__init__(wrapper)
            self.frame: LMFrame | None = None
            self.response: Any = None

        def leaving(self, error: BaseException | None) -> None:
            if self.frame is not None:
                finish(self.frame, self.response, error)

    if is_async:
        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with Request(async_wrapper) as call:
                if may_warn(self):
                    # An error filter raising it here: DSPy's own check raises it again, from `forward`, as untraced.
                    with contextlib.suppress(Exception):
                        self._warn_zero_temp_rollout(*_rollout_settings(self, kwargs))
                call.frame = begin(self, args, kwargs, sys._getframe(1))
                call.response = await original(self, *args, **kwargs)
            return call.response

        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with Request(wrapper) as call:
            if may_warn(self):
                # An error filter raising it here: DSPy's own check raises it again, from `forward`, as untraced.
                with contextlib.suppress(Exception):
                    self._warn_zero_temp_rollout(*_rollout_settings(self, kwargs))
            call.frame = begin(self, args, kwargs, sys._getframe(1))
            call.response = original(self, *args, **kwargs)
        return call.response

    return wrapper


def _streamed(lm: Any, kwargs: Mapping[str, Any]) -> bool:
    lm_kwargs = getattr(lm, "kwargs", None)
    return bool(kwargs.get("stream") or (isinstance(lm_kwargs, Mapping) and lm_kwargs.get("stream")))


def _rollout_settings(lm: Any, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """The `temperature` and `rollout_id` DSPy 3.0-3.3's `LM.forward` checks: the call's over the LM's."""
    settings = {**lm.kwargs, **kwargs}
    return settings.get("temperature"), settings.get("rollout_id")


def _outputs(result: Any, response: Any) -> Any:
    """What the request answered, as DSPy's outputs: DSPy 3.4's result has them; a 3.0-3.3 response (LiteLLM's chat,
    text-completion or Responses API object) is read as LiteLLM's own spans read it."""
    outputs = getattr(result, "outputs", None)
    if outputs is not None:
        return outputs
    if getattr(response, "choices", None):
        return answers(response)
    return responses_answers(response) if getattr(response, "output", None) else None


def execute_result(original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    """DSPy 3.4's `execution.execute` / `aexecute`: the result of the request `LM.forward` makes, read as `finalize`
    reads a call's."""

    def record(call: Any, result: Any) -> None:
        frame = current_lm_frame()
        if frame is not None and type(frame.call) is LegacyCall:  # a request made through `LM.forward`
            frame.call, frame.result = call, result

    if is_async:
        @functools.wraps(original)
        async def async_wrapper(lm: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                result = await original(lm, call, *args, **kwargs)
            except BaseException as error:
                drop_own_frame(error, async_wrapper)
                raise
            record(call, result)
            return result

        return async_wrapper

    @functools.wraps(original)
    def wrapper(lm: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = original(lm, call, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise
        record(call, result)
        return result

    return wrapper
