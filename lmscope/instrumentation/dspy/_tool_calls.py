"""Tools a program runs itself from an LM's native tool calls: `dspy.ToolCalls.ToolCall.execute()`.

With native function calling (`dspy.ChatAdapter(use_native_function_calling=True)`, a `dspy.ToolCalls` output
field) the LM's answer holds `ToolCall`s, and the program runs each with `call.execute(functions=...)`. DSPy then
calls the tool's function itself, not through `dspy.Tool.__call__`, so the step needs a span of its own here: the
same `execute_tool {name}` TOOL span a `dspy.Tool` call gets, with the tool's description and argument schema when
the program handed DSPy the `dspy.Tool`, and the call's id (DSPy 3.3+) (docs/dspy-internals.md §11).

`execute(functions=None)` looks the function up in its caller's locals, then globals (`inspect.currentframe().
f_back`). Under a wrapper its caller would be the wrapper, whose locals and globals are lmscope's: the wrapper does
that lookup in its own caller's frame, by the same rule, and hands DSPy what it found as `functions={name: found}`
(`{}` when nothing is found: DSPy raises its own ValueError), so the same function runs, or the same error is raised.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ...telemetry import _semconv as semconv
from .._stack import drop_own_frame
from ._attributes import tool_attributes
from ._frames import ModuleFrame
from ._runtime import NO_PATH, Runtime
from ._wrappers import schema_shown_to_the_lm, traced


def tool_call_execute(runtime: Runtime, original: Callable[..., Any], tool_class: type) -> Callable[..., Any]:
    """`ToolCall.execute` with a TOOL span around the function it runs; none when that function is a `tool_class`
    (`dspy.Tool`): its own `__call__` makes the span."""

    def start(call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame | None:
        return _start(runtime, call, args[0] if args else kwargs.get("functions"), tool_class)

    def end(frame: ModuleFrame | None, result: Any, error: BaseException | None) -> None:
        if frame is not None:
            runtime.end_module(frame, result, error)

    execute = traced(original, start, end, "tool call span start", suppressible=True)

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) + len(kwargs) <= 1 and (args[0] if args else kwargs.get("functions")) is None \
                and set(kwargs) <= {"functions"}:
            args, kwargs = (), {"functions": _found_by_caller(self.name)}  # as DSPy's lookup from our caller finds
        try:
            return execute(self, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)  # `execute` took its own frame off already
            raise

    return wrapper


def _found_by_caller(name: str) -> dict[str, Any]:
    """What `execute(functions=None)` called from the wrapper's caller finds for `name`, as a `functions` mapping."""
    caller = sys._getframe(2)  # 0: here, 1: the wrapper, 2: the program's line that called `execute`
    try:
        found = caller.f_locals.get(name) or caller.f_globals.get(name)
    finally:
        del caller
    return {name: found} if found is not None else {}


def _start(runtime: Runtime, call: Any, functions: Any, tool_class: type) -> ModuleFrame | None:
    """The span of the tool `call` runs from `functions` (a mapping, or a list of `dspy.Tool`s as DSPy searches it);
    None when DSPy will run a `dspy.Tool`'s own traced `__call__`."""
    name = call.name
    tool = None
    if isinstance(functions, dict):
        if isinstance(functions.get(name), tool_class):
            return None
    elif isinstance(functions, list):
        tool = next((item for item in functions if getattr(item, "name", None) == name), None)
    extra = tool_attributes(name, getattr(tool, "desc", None), schema_shown_to_the_lm(tool), runtime.content)
    call_id = getattr(call, "id", None)  # DSPy 3.3 and later keep the id the LM gave the call
    if isinstance(call_id, str) and call_id:
        extra[semconv.GEN_AI_TOOL_CALL_ID] = call_id
    return runtime.start_module(tool if tool is not None else call, (), call.args or {},
                                name=f"{semconv.GEN_AI_OPERATION_EXECUTE_TOOL} {name}", kind=semconv.KIND_TOOL,
                                path_owner=NO_PATH, extra=extra)
