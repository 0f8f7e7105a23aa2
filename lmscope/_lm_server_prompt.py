"""Read what a DSPy-formatted chat request asks for: output fields (name, type), input values, reply format.

Only the text DSPy's ChatAdapter and JSONAdapter put in the prompt (and JSONAdapter's `response_format`)
is read. A prompt with no DSPy structure is a plain chat request and gets a plain-text reply.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._lm_server_tokens import content_text

# ChatAdapter's closing instruction: "Respond with the corresponding output fields, starting with the field
# `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]` (must be formatted as ...), and then ending with ..."
_CHAT_INSTRUCTION = re.compile(r"Respond with the corresponding output fields, starting with the field (.*?)"
                               r"and then ending with the marker", re.S)
_CHAT_FIELD = re.compile(r"`\[\[ ## (\w+) ## \]\]`")
# JSONAdapter's closing instruction: "Respond with a JSON object in the following order of fields: `a`, then `b`."
_JSON_INSTRUCTION = re.compile(r"Respond with a JSON object in the following order of fields: (.*?)\.?\s*$", re.S)
_BACKTICKED = re.compile(r"`(\w+)`")
# The system message lists "Your output fields are:\n1. `answer` (str): description".
_FIELD_LIST = re.compile(r"Your output fields are:\n(.*?)(?:\nAll interactions will be structured|\Z)", re.S)
_FIELD_LINE = re.compile(r"^\d+\. `(\w+)` \((.+?)\):?(?: |$)", re.M)
_SECTION = re.compile(r"^\[\[ ## (\w+) ## \]\]\n?", re.M)
_INSTRUCTION_TAIL = re.compile(r"\n*Respond with (?:the corresponding output fields|a JSON object).*\Z", re.S)


@dataclass(frozen=True)
class OutputField:
    name: str
    type_name: str = "str"  # as DSPy prints it: str, int, bool, list[str], Literal['a', 'b'], ...
    json_type: str | None = None  # from a JSON schema, when the request carried one


@dataclass
class PromptRequest:
    reply_format: str  # "chat" (ChatAdapter sections), "json" (one JSON object) or "plain"
    output_fields: list[OutputField] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    full_text: str = ""


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _declared_types(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    system = "\n".join(content_text(m.get("content")) for m in messages if m.get("role") == "system")
    listing = _FIELD_LIST.search(system)
    return dict(_FIELD_LINE.findall(listing.group(1))) if listing else {}


def _schema_fields(response_format: Any) -> list[OutputField]:
    if not isinstance(response_format, Mapping):
        return []
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    properties = schema.get("properties") or {}
    return [OutputField(name, json_type=(spec or {}).get("type")) for name, spec in properties.items()]


def _input_sections(user_text: str) -> dict[str, str]:
    body = _INSTRUCTION_TAIL.sub("", user_text)
    marks = list(_SECTION.finditer(body))
    return {mark.group(1): body[mark.end():(marks[i + 1].start() if i + 1 < len(marks) else len(body))].strip()
            for i, mark in enumerate(marks)}


def read_prompt(body: Mapping[str, Any]) -> PromptRequest:
    messages = body.get("messages") or []
    user_text = _last_user_text(messages)
    declared = _declared_types(messages)
    inputs = _input_sections(user_text)
    full_text = "\n".join(content_text(m.get("content")) for m in messages)

    def typed(names: Sequence[str]) -> list[OutputField]:
        return [OutputField(name, declared.get(name, "str")) for name in names]

    response_format = body.get("response_format")
    format_type = response_format.get("type") if isinstance(response_format, Mapping) else None
    json_instruction = _JSON_INSTRUCTION.search(user_text)
    if format_type in ("json_schema", "json_object") or json_instruction:
        # The schema (structured outputs) is the most precise list; then the instruction; then the system list.
        fields = [OutputField(schema_field.name, declared.get(schema_field.name, "str"), schema_field.json_type)
                  for schema_field in _schema_fields(response_format)]
        if not fields and json_instruction:
            fields = typed(_BACKTICKED.findall(json_instruction.group(1)))
        return PromptRequest("json", fields or typed(list(declared)), inputs, full_text)
    chat_instruction = _CHAT_INSTRUCTION.search(user_text)
    if chat_instruction:
        return PromptRequest("chat", typed(_CHAT_FIELD.findall(chat_instruction.group(1))), inputs, full_text)
    if declared:  # a DSPy system prompt whose user turn lost the closing instruction
        return PromptRequest("chat", typed(list(declared)), inputs, full_text)
    return PromptRequest("plain", [], {"message": user_text} if user_text else {}, full_text)


def as_passages(value: str) -> list[str] | None:
    """An input value DSPy rendered from a list of strings (a JSON array), as that list; None if it is not one."""
    text = value.strip()
    if not text.startswith("["):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, list) and parsed and all(isinstance(item, str) for item in parsed):
            return parsed
    return None
