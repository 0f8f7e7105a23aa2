"""An LM call's messages as structured attributes: what Phoenix and Langfuse draw as a chat, not as a JSON blob.

Two conventions, written side by side from one scrubbed copy of each text:
- OpenInference's flattened keys: `llm.input_messages.{i}.message.role|content|name|tool_call_id`, multimodal parts
  as `....message.contents.{j}.message_content.type|text|image.image.url`, tool calls as
  `....message.tool_calls.{k}.tool_call.id|function.name|function.arguments`, the same under `llm.output_messages`,
  and the tools offered as `llm.tools.{i}.tool.json_schema`;
- the GenAI convention's JSON values (semantic conventions v1.37+ message schemas): `gen_ai.system_instructions`
  (the system messages' parts), `gen_ai.input.messages` (`[{"role", "parts": [...]}]`, everything else) and
  `gen_ai.output.messages` (`[{"role": "assistant", "parts": [...], "finish_reason"}]`).

Input is the OpenAI chat format DSPy and LiteLLM send (`{"role", "content": str | [parts], "tool_calls",
"tool_call_id", "name"}`), each message a dict or an object with those attributes (LiteLLM's `Message`, which a
tool-calling loop appends to the conversation as the answer gave it); output is what `BaseLM.__call__` returns: a
string per choice, or a dict with `text`, `reasoning_content` and `tool_calls`. Every text goes through the content
policy once (binary described, credentials redacted, cut to the limit); a JSON value is cut as a whole, like
`input.value`. Pure: plain values in, attributes out; nothing here reads or changes the program's objects beyond
looking at them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from openinference.semconv.trace import (
    ImageAttributes,
    MessageAttributes,
    MessageContentAttributes,
    ToolAttributes,
    ToolCallAttributes,
)

from . import _semconv as semconv
from ._content import ContentPolicy, truncate
from ._json import make_encoder

_ROLE: Final = MessageAttributes.MESSAGE_ROLE
_CONTENT: Final = MessageAttributes.MESSAGE_CONTENT
_CONTENTS: Final = MessageAttributes.MESSAGE_CONTENTS
_NAME: Final = MessageAttributes.MESSAGE_NAME
_TOOL_CALLS: Final = MessageAttributes.MESSAGE_TOOL_CALLS
_TOOL_CALL_ID: Final = MessageAttributes.MESSAGE_TOOL_CALL_ID
_PART_TYPE: Final = MessageContentAttributes.MESSAGE_CONTENT_TYPE
_PART_TEXT: Final = MessageContentAttributes.MESSAGE_CONTENT_TEXT
_PART_IMAGE_URL: Final = f"{MessageContentAttributes.MESSAGE_CONTENT_IMAGE}.{ImageAttributes.IMAGE_URL}"
_CALL_ID: Final = ToolCallAttributes.TOOL_CALL_ID
_CALL_NAME: Final = ToolCallAttributes.TOOL_CALL_FUNCTION_NAME
_CALL_ARGUMENTS: Final = ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON
_TOOL_SCHEMA: Final = ToolAttributes.TOOL_JSON_SCHEMA
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_MAX_MESSAGES: Final = 128
"""Messages (and tools, and parts of one message) recorded per side: a long conversation keeps its first 128, and
the JSON values say how many were left out."""
_FLAT_KEYS: Final = {"input": 48, "output": 24}
"""Flattened keys written per side; past them a message is in the JSON values only. The SDK keeps 128 attributes a
span by default and, past that, drops the OLDEST (the span kind, the model): an LM span has about 40 others."""


class _Writer:
    """Collects one side's attributes; each text is scrubbed once, for the flattened key and the JSON alike."""

    def __init__(self, policy: ContentPolicy, side: str) -> None:
        self.policy = policy
        self.attributes: dict[str, Any] = {}
        self.redacted = False
        self.keys_left = _FLAT_KEYS[side]

    def flat(self, key: str, value: Any) -> None:
        """A flattened key, while the side's budget lasts (cut to the limit if it is text)."""
        if self.keys_left > 0:
            self.keys_left -= 1
            self.attributes[key] = truncate(value, self.policy.max_chars) if type(value) is str else value

    def text(self, key: str, value: Any) -> str:
        """`value` as str, scrubbed for attribute `key` (not cut: the caller cuts what it stores)."""
        text = value if type(value) is str else _plain_text(value)
        scrubbed, redacted = self.policy.scrubber.text(text, key)
        self.redacted = self.redacted or redacted
        return scrubbed

    def arguments(self, key: str, value: Any) -> str:
        """A tool call's arguments: JSON text (as the LM wrote it), scrubbed as JSON, so `{"api_key": ...}` is too."""
        text = value if type(value) is str else _json(value)
        scrubbed, redacted = self.policy.scrubber.json(text, key)
        self.redacted = self.redacted or redacted
        return scrubbed

    def put_json(self, key: str, value: Any) -> None:
        self.attributes[key] = truncate(_json(value), self.policy.max_chars)

    def finish(self) -> dict[str, Any]:
        if self.redacted:
            self.attributes[semconv.SCRUBBED] = True
        return self.attributes


def input_message_attributes(messages: Any, tools: Any, policy: ContentPolicy) -> dict[str, Any]:
    """Attributes of the request's `messages` (a list of chat messages) and the `tools` it offered the LM."""
    writer = _Writer(policy, "input")
    if _is_list(messages):
        system: list[dict[str, Any]] = []
        chat: list[dict[str, Any]] = []
        for index, message in enumerate(messages[:_MAX_MESSAGES]):
            if type(message) is dict or isinstance(message, Mapping) or _field(message, "role") is not None:
                prefix = f"{semconv.LLM_INPUT_MESSAGES}.{index}."
                role, parts = _message(writer, prefix, message)
                if role in _SYSTEM_ROLES:
                    system.extend(parts)
                else:
                    chat.append({"role": role, "parts": parts})
        _note_left_out(chat, len(messages))
        if system:
            writer.put_json(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, system)
        if chat:
            writer.put_json(semconv.GEN_AI_INPUT_MESSAGES, chat)
    if tools is not None and _is_list(tools):
        for index, tool in enumerate(tools[:_MAX_MESSAGES]):
            key = f"{semconv.LLM_TOOLS}.{index}.{_TOOL_SCHEMA}"
            writer.flat(key, writer.arguments(key, tool))
    return writer.finish()


def output_message_attributes(outputs: Any, finish_reasons: Sequence[str] | None,
                              policy: ContentPolicy) -> dict[str, Any]:
    """Attributes of what the LM answered: one assistant message per choice (`n` > 1 gives several)."""
    if not _is_list(outputs):
        return {}
    writer = _Writer(policy, "output")
    messages: list[dict[str, Any]] = []
    for index, output in enumerate(outputs[:_MAX_MESSAGES]):
        prefix = f"{semconv.LLM_OUTPUT_MESSAGES}.{index}."
        writer.flat(prefix + _ROLE, "assistant")
        parts: list[dict[str, Any]] = []
        if type(output) is not str and isinstance(output, Mapping):
            reasoning = output.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                parts.append({"type": "reasoning", "content": writer.text(prefix + _CONTENT, reasoning)})
            text = output.get("text")
            calls = output.get("tool_calls")
        else:
            text, calls = output, None
        if text is not None:
            scrubbed = writer.text(prefix + _CONTENT, text)
            writer.flat(prefix + _CONTENT, scrubbed)
            parts.append({"type": "text", "content": scrubbed})
        parts.extend(_tool_calls(writer, prefix, calls))
        reason = finish_reasons[index] if finish_reasons and index < len(finish_reasons) else "stop"
        messages.append({"role": "assistant", "parts": parts, "finish_reason": reason})
    _note_left_out(messages, len(outputs))
    writer.put_json(semconv.GEN_AI_OUTPUT_MESSAGES, messages)
    return writer.finish()


def _role(message: Any) -> str:
    role = _field(message, "role")
    return "user" if role is None else str(role)


def _message(writer: _Writer, prefix: str, message: Any) -> tuple[str, list[dict[str, Any]]]:
    """Writes one input message's flattened keys; returns its role and its GenAI parts."""
    role = _role(message)
    writer.flat(prefix + _ROLE, role)
    for field, key in (("name", _NAME), ("tool_call_id", _TOOL_CALL_ID)):
        value = _field(message, field)
        if isinstance(value, str):
            writer.flat(prefix + key, writer.text(prefix + key, value))
    parts: list[dict[str, Any]] = []
    content = _field(message, "content")
    if isinstance(content, str):
        text = writer.text(prefix + _CONTENT, content)
        writer.flat(prefix + _CONTENT, text)
        parts.append({"type": "text", "content": text})
    elif content is not None and _is_list(content):
        for index, part in enumerate(content[:_MAX_MESSAGES]):
            if isinstance(part, Mapping):
                parts.append(_content_part(writer, f"{prefix}{_CONTENTS}.{index}.", part))
    if role == "tool":  # a tool's answer: one response part, as the GenAI schema models it
        response = " ".join(str(part.get("content", "")) for part in parts)
        parts = [{"type": "tool_call_response", "id": _field(message, "tool_call_id"), "response": response}]
    parts.extend(_tool_calls(writer, prefix, _field(message, "tool_calls")))
    return role, parts


def _content_part(writer: _Writer, prefix: str, part: Mapping[str, Any]) -> dict[str, Any]:
    """One part of a multimodal message (`{"type": "text"|"image_url"|...}`): flattened keys and its GenAI part."""
    kind = str(part.get("type", "text"))
    if kind == "text":
        text = writer.text(prefix + _PART_TEXT, part.get("text", ""))
        writer.flat(prefix + _PART_TYPE, "text")
        writer.flat(prefix + _PART_TEXT, text)
        return {"type": "text", "content": text}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url", "") if isinstance(image, Mapping) else image
        described = writer.text(prefix + _PART_IMAGE_URL, url)  # a data URL becomes "[image image/png N bytes ...]"
        writer.flat(prefix + _PART_TYPE, "image")
        writer.flat(prefix + _PART_IMAGE_URL, described)
        if described.startswith("["):
            return {"type": "blob", "modality": "image", "content": described}
        return {"type": "uri", "modality": "image", "uri": described}
    # Audio, files and parts yet to come: recorded as what they are, their payload described like any content.
    summary = writer.text(prefix + _PART_TEXT, _json(part))
    writer.flat(prefix + _PART_TYPE, kind)
    writer.flat(prefix + _PART_TEXT, summary)
    return {"type": kind, "content": summary}


def _tool_calls(writer: _Writer, prefix: str, calls: Any) -> list[dict[str, Any]]:
    """Writes the flattened keys of a message's tool calls (OpenAI's `[{"id", "function": {"name", "arguments"}}]`);
    returns their GenAI `tool_call` parts."""
    if calls is None or not _is_list(calls):
        return []
    parts = []
    for index, call in enumerate(calls[:_MAX_MESSAGES]):
        function = _field(call, "function")
        name, arguments, call_id = _field(function, "name"), _field(function, "arguments"), _field(call, "id")
        key = f"{prefix}{_TOOL_CALLS}.{index}."
        part: dict[str, Any] = {"type": "tool_call", "name": str(name) if name is not None else None}
        if call_id is not None:
            part["id"] = str(call_id)
            writer.flat(key + _CALL_ID, part["id"])
        if name is not None:
            writer.flat(key + _CALL_NAME, str(name))
        if arguments is not None:
            text = writer.arguments(key + _CALL_ARGUMENTS, arguments)
            writer.flat(key + _CALL_ARGUMENTS, text)
            part["arguments"] = _parsed(text)
        parts.append(part)
    return parts


def _note_left_out(messages: list[dict[str, Any]], total: int) -> None:
    if total > _MAX_MESSAGES:
        messages.append({"role": "lmscope", "parts": [{"type": "text",
                                                        "content": f"{total - _MAX_MESSAGES} more not recorded"}]})


def _is_list(value: Any) -> bool:
    """A sequence of items, not text. The exact types first: an ABC check costs ~0.25 µs, a span makes a dozen."""
    kind = type(value)
    if kind is list or kind is tuple:
        return True
    return kind is not str and isinstance(value, Sequence) and not isinstance(value, bytes)


def _field(value: Any, name: str) -> Any:
    """`value[name]` or `value.name`: LiteLLM hands messages and tool calls as dicts or as its own objects."""
    if type(value) is dict or isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _parsed(text: str) -> Any:
    """Tool-call arguments as the JSON object they encode, else the text itself (an LM may write broken JSON)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - content never costs the span
        return f"<unprintable {type(value).__name__}>"


_encode = make_encoder(_plain_text)


def _json(value: Any) -> str:
    """JSON text of a message value (what `json.dumps(value, ensure_ascii=False, default=str)` gives)."""
    try:
        return _encode(value)
    except (RecursionError, ValueError, TypeError):  # a cycle, or keys JSON cannot have: content never costs the span
        return _encode(_plain_text(value))
