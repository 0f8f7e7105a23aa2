"""A stream's answers, assembled from its deltas as LiteLLM's `stream_chunk_builder` assembles them: one per choice,
in the shape `_results.answers` gives a response that was not streamed (text, or text and tool calls).

A tool call comes in pieces: its id and function name once, its arguments a fragment at a time; pieces belong together
by choice and tool-call index (docs/litellm-internals.md §3). `counted_text` is what LiteLLM's token counter reads of
an answer when the provider sent no usage.
"""

from __future__ import annotations

from typing import Any

from ._results import answer, tool_call


class _ToolCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class StreamedAnswers:
    """The texts and tool calls a stream's deltas delivered so far, per choice."""

    def __init__(self) -> None:
        self.texts: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, _ToolCall]] = {}

    def add_text(self, choice: int, text: str) -> None:
        self.texts.setdefault(choice, []).append(text)

    def add_tool_call(self, choice: int, delta: Any) -> None:
        """One piece of a tool call (a `delta.tool_calls` item)."""
        index = getattr(delta, "index", None)
        call = self._calls.setdefault(choice, {}).setdefault(index if isinstance(index, int) else 0, _ToolCall())
        function = getattr(delta, "function", None)
        call.id = call.id or getattr(delta, "id", None)
        call.name = call.name or getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str):
            call.arguments.append(arguments)

    def answers(self) -> list[Any]:
        """One answer per choice that delivered anything, in choice order."""
        out: list[Any] = []
        for index in sorted(self.texts.keys() | self._calls.keys()):
            text = "".join(self.texts[index]) if index in self.texts else None
            calls = self._calls.get(index, {})
            out.append(answer(text, [tool_call(call.id, call.name, "".join(call.arguments))
                                     for _, call in sorted(calls.items())]))
        return out


def counted_text(given: Any) -> str:
    """What LiteLLM counts of an answer (`get_content_from_model_response`): its text, then each tool call as the JSON
    of LiteLLM's own tool-call object."""
    if not isinstance(given, dict):
        return given if isinstance(given, str) else ""
    from litellm.types.utils import ChatCompletionMessageToolCall

    calls = "".join(ChatCompletionMessageToolCall(id=call["id"], type="function", function=call["function"])
                    .model_dump_json() for call in given.get("tool_calls") or ())
    return (given.get("text") or "") + calls
