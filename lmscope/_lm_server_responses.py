"""OpenAI Responses API for the stand-in LM server: `POST /v1/responses`, JSON or `stream: true` SSE.

A Responses request is read as the chat request it amounts to, so the reply and every count follow the chat rules
(`_lm_server_tokens`, `_lm_server_prefix_cache`, `_lm_server_answers`): `instructions` is a system message first,
`input` a string (one user message) or a list of messages (`{"role", "content"}`, content a string or
`input_text` / `output_text` parts; `"type": "message"` or none). `usage.input_tokens` is the chat prompt count of
those messages, `input_tokens_details.cached_tokens` the prefix cache's share of it, `usage.output_tokens` the
answer's tokens. Items that are not messages (tool results, reasoning) are refused with 400: the stand-in has no
tools.

A stream sends OpenAI's event sequence for one text answer: `response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, one `response.output_text.delta` per word,
`response.output_text.done`, `response.content_part.done`, `response.output_item.done`, and `response.completed`
carrying the whole response with its usage; each event has its `sequence_number`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._lm_server_wire import Completion

RESPONSES_PATH = "/v1/responses"
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text")


class BadResponsesRequest(ValueError):
    """The body is not a Responses request the stand-in can answer; answered with 400."""


@dataclass(frozen=True)
class ResponsesRequest:
    model: str
    messages: list[dict[str, Any]]
    """The request as chat messages: what the reply and the token counts are made from."""
    body: dict[str, Any]

    def chat_body(self) -> dict[str, Any]:
        """The chat request this one amounts to, for the reply composer: messages, and `text.format` (the
        Responses API's structured outputs) as chat's `response_format`."""
        text = self.body.get("text")
        form = text.get("format") if isinstance(text, dict) else None
        chat: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if isinstance(form, dict) and form.get("type") in ("json_schema", "json_object"):
            chat["response_format"] = {"type": form["type"], "json_schema": {"schema": form.get("schema") or {}}}
        return chat


def read_responses_request(body: Any) -> ResponsesRequest:
    """The chat view of a parsed /v1/responses body; raises BadResponsesRequest when it is not one."""
    if not isinstance(body, dict):
        raise BadResponsesRequest("The request body must be a JSON object.")
    model, instructions, given = body.get("model"), body.get("instructions"), body.get("input")
    if not isinstance(model, str) or not model:
        raise BadResponsesRequest("You must provide a model parameter.")
    if instructions is not None and not isinstance(instructions, str):
        raise BadResponsesRequest("'instructions' must be a string.")
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    if isinstance(given, str) and given:
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list) and given:
        messages.extend(_message(item) for item in given)
    else:
        raise BadResponsesRequest("'input' must be a non-empty string or a non-empty array of input items.")
    return ResponsesRequest(model=model, messages=messages, body=body)


def _message(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("type", "message") != "message" or item.get("role") not in _MESSAGE_ROLES:
        raise BadResponsesRequest("The stand-in LM answers input items of type 'message' with a role of "
                                  f"{', '.join(_MESSAGE_ROLES)} only.")
    content = item.get("content")
    if isinstance(content, list):
        if not all(isinstance(part, dict) and part.get("type") in _TEXT_PARTS for part in content):
            raise BadResponsesRequest("The stand-in LM reads text content parts only "
                                      f"({', '.join(_TEXT_PARTS)}).")
        content = [{"type": "text", "text": str(part.get("text") or "")} for part in content]
    elif not isinstance(content, str):
        raise BadResponsesRequest("A message's 'content' must be a string or an array of content parts.")
    return {"role": item["role"], "content": content}


def response_id(completion: Completion) -> str:
    return "resp_" + completion.id.removeprefix("chatcmpl-")


def _message_id(completion: Completion) -> str:
    return "msg_" + completion.id.removeprefix("chatcmpl-")


def response_usage(completion: Completion) -> dict[str, Any]:
    return {"input_tokens": completion.prompt_tokens,
            "input_tokens_details": {"cached_tokens": completion.cached_tokens},
            "output_tokens": completion.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": completion.prompt_tokens + completion.completion_tokens}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_item(completion: Completion, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "id": _message_id(completion), "status": status, "role": "assistant",
            "content": content}


def response_body(completion: Completion, request: ResponsesRequest, status: str = "completed") -> dict[str, Any]:
    """The response object: the whole answer when `status` is "completed", the empty shell of `response.created`
    when "in_progress"."""
    body = request.body
    done = status == "completed"
    return {
        "id": response_id(completion), "object": "response", "created_at": completion.created, "status": status,
        "background": False, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": completion.model,
        "output": [_output_item(completion, "completed", [_text_part(completion.text)])] if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
        "usage": response_usage(completion) if done else None, "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def response_events(completion: Completion, request: ResponsesRequest) -> Iterator[dict[str, Any]]:
    """The SSE events of `stream: true`, in OpenAI's order (module doc)."""
    item_id = _message_id(completion)
    shell = response_body(completion, request, "in_progress")
    pieces = re.findall(r"\s*\S+\s*", completion.text) or [completion.text]
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": shell},
        {"type": "response.in_progress", "response": shell},
        {"type": "response.output_item.added", "output_index": 0,
         "item": _output_item(completion, "in_progress", [])},
        {"type": "response.content_part.added", **where, "part": _text_part("")},
        *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []} for piece in pieces),
        {"type": "response.output_text.done", **where, "text": completion.text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _text_part(completion.text)},
        {"type": "response.output_item.done", "output_index": 0,
         "item": _output_item(completion, "completed", [_text_part(completion.text)])},
        {"type": "response.completed", "response": response_body(completion, request)},
    ]
    for number, event in enumerate(events):
        yield {**event, "sequence_number": number}
