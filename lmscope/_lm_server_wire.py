"""OpenAI Chat Completions wire shapes: the response body, the SSE chunks of a stream, errors, the model list."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Completion:
    """One answered request, everything the wire needs."""

    model: str
    text: str
    choices: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int  # per choice
    finish_reason: str = "stop"
    """Every choice's: "length" when the answer was cut at the request's `max_tokens`."""
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> dict[str, Any]:
        # OpenAI bills every choice's tokens; the prompt is billed once.
        completion_tokens = self.completion_tokens * self.choices
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }

    def _envelope(self, object_type: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_type, "created": self.created, "model": self.model,
                "system_fingerprint": "fp_lmscope_stand_in"}

    def body(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.text, "refusal": None}
        choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
                   for i in range(self.choices)]
        return {**self._envelope("chat.completion"), "choices": choices, "usage": self.usage()}

    def pieces(self) -> list[str]:
        """The answer's text in the word-sized pieces a stream sends it in."""
        return re.findall(r"\s*\S+\s*", self.text) or [self.text]

    def stream_chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        """The chunks of `stream: true`: per choice (each chunk names its `index`), a role delta, word-sized content
        deltas and its finish; then the usage, if asked."""
        envelope = self._envelope("chat.completion.chunk")

        def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {**envelope, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                             "finish_reason": finish_reason}]}

        pieces = self.pieces()
        for index in range(self.choices):
            yield chunk(index, {"role": "assistant", "content": ""})
            for piece in pieces:
                yield chunk(index, {"content": piece})
            yield chunk(index, {}, self.finish_reason)
        if include_usage:  # stream_options.include_usage: a last chunk with no choices and the usage
            yield {**envelope, "choices": [], "usage": self.usage()}


def error_body(message: str, error_type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def models_body(model_ids: list[str]) -> dict[str, Any]:
    models = [{"id": model_id, "object": "model", "created": 0, "owned_by": "lmscope"} for model_id in model_ids]
    return {"object": "list", "data": models}
