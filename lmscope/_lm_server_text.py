"""OpenAI's legacy Completions for the stand-in LM server: `POST /v1/completions`, what DSPy's
`dspy.LM(..., model_type="text")` calls (through LiteLLM's `text-completion-openai/` provider).

`prompt` is a string or a list of strings; each is answered as a one-message chat would be (the same reply rules),
with `n` choices per prompt, numbered across prompts as OpenAI numbers them. `usage.prompt_tokens` is the o200k_base
count of the prompt text itself: a text prompt has no chat framing. Streamed, each choice's text comes in word-sized
`text` chunks, then its finish; the usage chunk when `stream_options.include_usage` asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._lm_server_wire import Completion

COMPLETIONS_PATH = "/v1/completions"


class BadTextRequest(ValueError):
    """The body is not a completions request; answered with 400."""


def read_prompts(body: Any) -> list[str]:
    """The prompts of a parsed /v1/completions body; raises BadTextRequest when it is not one."""
    if not isinstance(body, dict):
        raise BadTextRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadTextRequest("You must provide a model parameter.")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(item, str) for item in prompts):
        raise BadTextRequest("'prompt' must be a string or a non-empty array of strings.")
    return prompts


@dataclass(frozen=True)
class TextCompletion:
    """The answers to every prompt of one request (one `Completion` each, `n` choices each)."""

    answers: tuple[Completion, ...]

    def usage(self) -> dict[str, int]:
        prompt = sum(answer.prompt_tokens for answer in self.answers)
        completion = sum(answer.completion_tokens * answer.choices for answer in self.answers)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _envelope(self) -> dict[str, Any]:
        first = self.answers[0]
        return {"id": "cmpl-" + first.id.removeprefix("chatcmpl-"), "object": "text_completion",
                "created": first.created, "model": first.model}

    def _choices(self) -> Iterator[tuple[int, Completion]]:
        index = 0
        for answer in self.answers:
            for _ in range(answer.choices):
                yield index, answer
                index += 1

    def body(self) -> dict[str, Any]:
        choices = [{"text": answer.text, "index": index, "logprobs": None, "finish_reason": answer.finish_reason}
                   for index, answer in self._choices()]
        return {**self._envelope(), "choices": choices, "usage": self.usage()}

    def stream_chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        envelope = self._envelope()

        def chunk(index: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
            return {**envelope, "choices": [{"text": text, "index": index, "logprobs": None,
                                             "finish_reason": finish_reason}]}

        for index, answer in self._choices():
            for piece in answer.pieces():
                yield chunk(index, piece)
            yield chunk(index, "", answer.finish_reason)
        if include_usage:
            yield {**envelope, "choices": [], "usage": self.usage()}
