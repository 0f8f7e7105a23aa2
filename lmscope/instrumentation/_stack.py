"""What code that reads the call stack sees of lmscope's wrappers: nothing it would not see untraced.

Two readers matter:

- Tracebacks. DSPy sends them on: ReAct hands a failing tool's first frames to the LM
  (`format_error_for_lm(err, traceback_frames=5)`), so one extra frame of ours would change the prompt and the
  cache key, and send lmscope's install path to the provider. A wrapper that re-raises calls `drop_own_frame`.
- Stack walks that attribute a warning to "the first frame outside the library". DSPy's migration
  `DeprecationWarning`s skip every frame whose module is `dspy` or `dspy.*` (`dspy/clients/_deprecation.py`):
  our wrapper between the user's line and DSPy would take the blame, and Python's default filters, which show
  `DeprecationWarning`s only when they are attributed to `__main__`, would then hide them. `attributed_to` gives a
  wrapper a module name the walk skips, so the user's line is blamed, as without lmscope.

Only function and traceback objects are touched, never live frames (`inspect.currentframe()`, `f_back`).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])


def drop_own_frame(error: BaseException, wrapper: Callable[..., Any]) -> None:
    """Take `wrapper`'s entry off the head of `error`'s traceback, if it is there.

    Call it in the wrapper's `except` block right before a bare `raise`: from Python 3.11 on, a bare `raise`
    re-raises with the exception's own `__traceback__` and adds no entry for the re-raising frame, so the program
    sees the traceback it would see untraced. (Python 3.10 re-raises the traceback saved when the exception was
    caught: there the wrapper's frame stays.)
    """
    trace = error.__traceback__
    if trace is not None and trace.tb_frame.f_code is getattr(wrapper, "__code__", None):
        error.__traceback__ = trace.tb_next


_Block = TypeVar("_Block", bound="WrappedCall")


class WrappedCall:
    """The block a wrapper runs the wrapped function in: `with Block(..., wrapper=wrapper): return original(...)`,
    sync or async alike. An error leaves it as a bare `raise` would, without the wrapper's frame in its traceback
    (`drop_own_frame`, first: what `leaving` records is the traceback the program gets); then `leaving` runs."""

    __slots__ = ("wrapper",)

    def __init__(self, wrapper: Callable[..., Any]) -> None:
        self.wrapper = wrapper

    def __enter__(self: _Block) -> _Block:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, _tb: Any) -> None:
        if error is not None:
            drop_own_frame(error, self.wrapper)
        self.leaving(error)

    def leaving(self, error: BaseException | None) -> None:
        """On the way out of the block (`error`: what the wrapped function raised)."""


def attributed_to(package: str, wrapper: Function) -> Function:
    """A copy of `wrapper` whose frames carry the module name `<package>.__lmscope__` and no other global than the
    ones its code uses.

    A frame's module name is its function's `__globals__["__name__"]`, so the copy gets globals of its own with that
    one name changed. They hold only the names the wrapper's code (and the functions it defines) looks up, taken from
    its module after the module has loaded: DSPy resolves the types a string signature names
    (`dspy.Predict("q -> e: Evaluation")`) by looking for them in every frame's locals and globals up the stack, so a
    wrapper frame between the user's function and DSPy must not offer lmscope's own `Evaluation`, `Context` or
    `Token` in place of the user's. Code, closure, defaults and the `functools.wraps` attributes are the original's.
    """
    if not isinstance(wrapper, types.FunctionType):
        return wrapper
    module_globals = wrapper.__globals__
    own = {name: module_globals[name] for name in _names_used(wrapper.__code__) if name in module_globals}
    own["__name__"] = f"{package}.__lmscope__"
    own["__builtins__"] = module_globals["__builtins__"]
    copy = types.FunctionType(wrapper.__code__, own, wrapper.__name__, wrapper.__defaults__, wrapper.__closure__)
    copy.__kwdefaults__ = wrapper.__kwdefaults__
    copy.__dict__.update(wrapper.__dict__)
    copy.__qualname__ = wrapper.__qualname__
    copy.__module__ = wrapper.__module__
    copy.__doc__ = wrapper.__doc__
    return copy  # type: ignore[return-value]


def _names_used(code: types.CodeType) -> set[str]:
    """The global (and attribute) names `code` and the code of the functions it defines look up."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names
