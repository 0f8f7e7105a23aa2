"""Who called: whether the code calling a function lmscope wraps is DSPy's own or the app's.

A call DSPy makes for its own LM call (its LiteLLM request, its `LM.forward`) is part of the span lmscope already has
for that call; the same function called by the app's code (a custom LM's `forward`, a DSPy callback) is a call of its
own. Only the caller tells them apart: the nearest frame above the wrapper that is not a wrapper itself (lmscope's,
or one another instrumentation put around the same function). The stack is only read, a few frames of it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

_NOT_CALLERS = ("lmscope.", "opentelemetry.", "openinference.", "openlit.", "wrapt.")
"""Modules whose frames stand between a caller and lmscope's wrapper without being the caller: lmscope's own, and the
wrappers other instrumentations put around the same functions (OpenInference's LiteLLM instrumentor, which
`logfire.instrument_litellm()` runs too, patches over lmscope's patch)."""
_MOST_FRAMES = 8
"""How far up the stack the caller is looked for: past a few wrappers; no farther (a deeper stack is not DSPy's)."""


def caller_module(frame: FrameType | None) -> object:
    """The module name of the nearest of `frame` and the frames above it that is in none of `_NOT_CALLERS`; None when
    there is none within `_MOST_FRAMES`, or it has no name."""
    caller = nearest_frame(frame, lambda name: not (isinstance(name, str) and name.startswith(_NOT_CALLERS)),
                           _MOST_FRAMES)
    return caller.f_globals.get("__name__") if caller is not None else None


def is_dspy(name: object) -> bool:
    """Whether module `name` is `dspy` or `dspy.*` (lmscope's wrappers of DSPy's methods are `dspy.__lmscope__`: DSPy's
    too)."""
    return name == "dspy" or (isinstance(name, str) and name.startswith("dspy."))


_CALLBACK_RUNNERS = frozenset({"_execute_start_callbacks", "_execute_end_callbacks"})
"""The functions of DSPy's `with_callbacks` (`dspy/utils/callback.py`, the same in DSPy 3.0 to 3.4) that run a
callback's `on_*_start` / `on_*_end`; the wrapped call itself runs from its `sync_wrapper` / `async_wrapper` there."""
_CALLBACK_MODULE = "dspy.utils.callback"
_MOST_CALLBACK_FRAMES = 64
"""How far up a callback runner is looked for: a callback that reaches an LM call through more nested frames than this
has that call taken for the LM's own (a known limit, kept so the walk stays cheap)."""


def called_from_callback(frame: FrameType | None) -> bool:
    """Whether the code at `frame` runs in a DSPy callback (`on_lm_start`, `on_lm_end`, ...): the nearest frame of
    `dspy.utils.callback` at or above it runs callbacks, not the call they are around."""
    runner = nearest_frame(frame, lambda name: name == _CALLBACK_MODULE, _MOST_CALLBACK_FRAMES)
    return runner is not None and runner.f_code.co_name in _CALLBACK_RUNNERS


def nearest_frame(frame: FrameType | None, found: Callable[[object], bool], most: int) -> FrameType | None:
    """The nearest of `frame` and the `most - 1` frames above it whose module name (`f_globals["__name__"]`, None if
    it has none) is `found`; None past them or at the top of the stack."""
    for _ in range(most):
        if frame is None:
            return None
        if found(frame.f_globals.get("__name__")):
            return frame
        frame = frame.f_back
    return None
