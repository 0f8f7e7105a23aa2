"""DSPy's request made by the app's code: `dspy.LM.forward` / `aforward` called by a custom LM (`super().forward(...)`
in a `dspy.LM` subclass's own `forward`), or by the app directly.

DSPy's own LM call reaches `LM.forward` only from DSPy's code: on 3.0-3.3 `BaseLM.__call__` calls `self.forward`; on
3.4 a `dspy.LM` whose `forward` is DSPy's is run by its engine without it, and one whose `forward` is the app's is run
by DSPy's legacy engine, which calls that one (docs/dspy-internals.md §4). So a call of `LM.forward` whose caller, past
the wrappers, is not DSPy's (`_callers.called_by_dspy`), and which is not DSPy's call of an LM's inherited `forward`
through someone else's wrapper of it, is a request the app's code made: a DSPy LM span of its own,
counting what that request cost (its LiteLLM or native request, or DSPy's cache hit). Inside a custom LM's call it is
a child of that LM's span, which gives way to it and to the LM's other calls (`_lm_children.py`), so a custom LM that
mixes DSPy's request with LiteLLM calls of its own counts each request once, whichever answer it returns.

Such a request never reaches `finalize` (3.4) or `_process_lm_response` (3.0-3.3), where lmscope reads a call's
result: on 3.4 it is read where `LM.forward` gets it, from `execution.execute` / `aexecute`; on 3.0-3.3 `LM.forward`
returns the provider's response itself.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .._callers import called_by_dspy
from .._stack import drop_own_frame
from ._frames import LMFrame, current_lm_frame
from ._results import LegacyCall, LegacyResult
from ._runtime import Runtime
from ._wrappers import traced, traced_async


def forward_request(runtime: Runtime, original: Callable[..., Any], owner: type, *,
                    is_async: bool = False) -> Callable[..., Any]:
    """`LM.forward` / `LM.aforward` (`owner`: `dspy.LM`): a DSPy LM span when the app's code calls it; passed straight
    through when DSPy's own call does."""
    name = "aforward" if is_async else "forward"

    def dspys_own_call(lm: Any) -> bool:
        """DSPy's code called it (the frame above `traced`'s wrapper, which calls this, is the caller), or it runs in
        this LM's own call and the LM's class has no `forward` of its own: DSPy called `self.forward`, and what stands
        between is a wrapper someone else put around `LM.forward` (another instrumentation's, a test's)."""
        frame = current_lm_frame()
        if frame is not None and frame.lm is lm and getattr(type(lm), name, None) is getattr(owner, name, None):
            return True
        return called_by_dspy(sys._getframe(2))

    def start(lm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LMFrame:
        frame = runtime.start_lm(lm, args, kwargs)
        # Marks a request made through `LM.forward` (`execute_result`), and says whether it asked for DSPy's cache
        # as `LM.forward` reads it; DSPy 3.4's own call replaces it.
        frame.call = LegacyCall(bool(kwargs.get("cache", getattr(lm, "cache", True))))
        return frame

    def end(frame: LMFrame, response: Any, error: BaseException | None) -> None:
        if error is None and frame.result is None:  # DSPy 3.0-3.3: the provider's response is the call's result
            frame.result = LegacyResult(response)
        runtime.end_lm(frame, _outputs(frame.result, response), error)

    wrap = traced_async if is_async else traced
    return wrap(original, start, end, "DSPy request span start", suppressible=True, within=dspys_own_call)


def _outputs(result: Any, response: Any) -> Any:
    """What the request answered, as DSPy's outputs: DSPy 3.4's result has them; a 3.0-3.3 response is read as
    DSPy reads it there, each choice's message text (None when there is nothing to read)."""
    outputs = getattr(result, "outputs", None)
    if outputs is not None:
        return outputs
    choices = response.get("choices") if isinstance(response, Mapping) else getattr(response, "choices", None)
    if not choices:
        return None
    return [_text(choice) for choice in choices]


def _text(choice: Any) -> str:
    message = choice.get("message") if isinstance(choice, Mapping) else getattr(choice, "message", None)
    text = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
    return text if isinstance(text, str) else ""


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
