"""The Responses API's shapes (`litellm.responses` / `aresponses`), read as the chat call they amount to.

GenAI semantic conventions name a Responses call a `chat` (the OpenAI conventions tell the two APIs apart with
`openai.api.type` only), so its span is `chat {model}` with the chat contract; this module gives the chat view:
- the request as chat messages: `instructions` a system message first, `input` a string (one user message) or a
  list of items: messages (`{"role", "content"}`, content parts `input_text`/`output_text` as text parts,
  `input_image` as an image part), a `function_call` as an assistant tool call, a `function_call_output` as a tool
  message; any other item is kept as a user message holding the item itself (the content rules describe it);
- the answer (`response.output`): the text of its `message` items, its `function_call` items as tool calls, its
  `reasoning` summaries as reasoning, one assistant message in all;
- finish reasons from `status`: `completed` is "stop" (or "tool_calls" when it asked for a tool), `incomplete`
  is `incomplete_details.reason` ("max_output_tokens", "content_filter").
Usage comes in its own names (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`,
`output_tokens_details.reasoning_tokens`): `_results.usage_into` reads both shapes. Duck typing throughout, as
LiteLLM hands these as its pydantic objects or as plain dicts; no LiteLLM import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._token_counts import get


def responses_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The request's `instructions` and `input` as chat messages; None when it has neither."""
    messages: list[dict[str, Any]] = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    given = kwargs.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, Sequence) and not isinstance(given, (bytes, bytearray)):
        messages.extend(_message(item) for item in given)
    return messages or None


def _message(item: Any) -> dict[str, Any]:
    kind = get(item, "type")
    if kind == "function_call":
        call = {"id": get(item, "call_id"),
                "function": {"name": get(item, "name"), "arguments": get(item, "arguments")}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": get(item, "call_id"), "content": get(item, "output")}
    role = get(item, "role")
    if kind in (None, "message") and isinstance(role, str):
        content = get(item, "content")
        if isinstance(content, Sequence) and not isinstance(content, (str, bytes, bytearray)):
            content = [_part(part) for part in content]
        return {"role": role, "content": content}
    return {"role": "user", "content": [item]}


def _part(part: Any) -> Any:
    kind = get(part, "type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": get(part, "text")}
    if kind == "input_image" and get(part, "image_url"):
        return {"type": "image_url", "image_url": {"url": get(part, "image_url")}}
    return part


def responses_answers(response: Any) -> list[Any]:
    """The answer of a Responses result as one assistant message: its text, or a dict with `text`, `tool_calls`
    and `reasoning_content` when it has more than text (`_messages.output_message_attributes` reads both)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for item in get(response, "output") or ():
        kind = get(item, "type")
        if kind == "message":
            texts.extend(str(get(part, "text")) for part in get(item, "content") or ()
                         if get(part, "type") == "output_text")
        elif kind == "function_call":
            calls.append({"id": get(item, "call_id"),
                          "function": {"name": get(item, "name"), "arguments": get(item, "arguments")}})
        elif kind == "reasoning":
            reasoning.extend(str(get(part, "text")) for part in get(item, "summary") or ())
    text = "".join(texts) if texts or not calls else None
    if not calls and not reasoning:
        return [text]
    answer: dict[str, Any] = {"text": text}
    if calls:
        answer["tool_calls"] = calls
    if reasoning:
        answer["reasoning_content"] = "\n".join(reasoning)
    return [answer]


def responses_finish_reasons(response: Any) -> tuple[str, ...]:
    status = get(response, "status")
    if status == "completed":
        asked_for_tool = any(get(item, "type") == "function_call" for item in get(response, "output") or ())
        return ("tool_calls" if asked_for_tool else "stop",)
    if status == "incomplete":
        return (str(get(get(response, "incomplete_details"), "reason") or "incomplete"),)
    return (str(status),) if isinstance(status, str) and status else ()
