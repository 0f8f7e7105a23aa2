"""`litellm.text_completion` / `atext_completion` on the stand-in server: one `text_completion` span each, with the
server's bill, LiteLLM's own price of the response and, streamed, the text the program read."""

from __future__ import annotations

import asyncio
import json
import time

import litellm
import pytest
from litellm_span import litellm_price

from lmscope.telemetry import _semconv as semconv

MODEL = "openai/gpt-4o-mini"


def _ask(lm_server, unique, **kwargs):
    return {"model": MODEL, "prompt": f"Say hi {unique}", "api_base": lm_server.base_url, "api_key": "sk-anything",
            **kwargs}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_text_completion_has_litellms_price(litellm_spans, lm_server, unique, is_async):
    request = _ask(lm_server, unique)
    response = asyncio.run(litellm.atext_completion(**request)) if is_async else litellm.text_completion(**request)

    (span,) = litellm_spans()
    attributes = span.attributes
    assert span.name == "text_completion gpt-4o-mini"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(litellm.completion_cost(response), rel=1e-9)
    assert attributes[semconv.COST_SOURCE] == "litellm" and semconv.COST_UNKNOWN not in attributes


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-chunk", "no-usage-chunk"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("prompts", [1, 2], ids=["a-prompt", "a-list-of-prompts"])
def test_a_streamed_text_completion_has_its_text_and_the_servers_bill(litellm_spans, lm_server, unique, include_usage,
                                                                      is_async, prompts):
    """LiteLLM sends the prompt as chat messages (one user message per prompt), which the server bills: without a
    usage chunk lmscope counts those, not the bare prompt."""
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    prompt = f"Say hi {unique}" if prompts == 1 else [f"Say hi {unique}", "and then bye"]
    request = _ask(lm_server, unique, prompt=prompt, stream=True, **extra)

    async def read_async():
        return [chunk async for chunk in await litellm.atext_completion(**request)]

    before = lm_server.billed_chat_tokens
    chunks = asyncio.run(read_async()) if is_async else list(litellm.text_completion(**request))
    billed = tuple(now - then for now, then in zip(lm_server.billed_chat_tokens, before, strict=True))

    text = "".join(chunk.choices[0].text or "" for chunk in chunks if chunk.choices)
    (span,) = litellm_spans()
    attributes = span.attributes
    assert text and json.loads(attributes[semconv.OUTPUT_VALUE]) == [text]
    sent = [prompt] if prompts == 1 else prompt
    assert [attributes[f"{semconv.LLM_INPUT_MESSAGES}.{i}.message.content"] for i in range(prompts)] == sent
    assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    assert (semconv.USAGE_ESTIMATED in attributes) is not include_usage
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(litellm_price(*billed), rel=1e-9)


@pytest.mark.parametrize("max_tokens", [None, 5], ids=["stop", "length"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_streamed_text_completion_of_two_choices_records_each_ones_finish_reason(litellm_spans, lm_server, unique,
                                                                                  is_async, max_tokens):
    """As for a chat stream (test_litellm_calls.py): LiteLLM hands the program the first choice's finish only (pinned
    below); the span has every choice's, read from the provider's chunks of the chat stream beneath the text
    completion's (docs/litellm-internals.md §3), as the same call not streamed has them."""
    request = _ask(lm_server, unique, n=2, **({"max_tokens": max_tokens} if max_tokens else {}))
    response = litellm.text_completion(**request)
    streamed_request = {**request, "stream": True, "stream_options": {"include_usage": True}}

    async def read_async():
        return [chunk async for chunk in await litellm.atext_completion(**streamed_request)]

    chunks = asyncio.run(read_async()) if is_async else list(litellm.text_completion(**streamed_request))

    reason = "length" if max_tokens else "stop"
    assert [choice.finish_reason for choice in response.choices] == [reason, reason]
    assert [(choice.index, choice.finish_reason) for chunk in chunks for choice in chunk.choices
            if choice.finish_reason] == [(0, reason)]
    not_streamed, streamed = (dict(span.attributes) for span in litellm_spans())
    assert streamed[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (reason, reason)
    text = response.choices[0].text
    assert json.loads(streamed[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reason}] * 2
    for key in (semconv.GEN_AI_RESPONSE_FINISH_REASONS, semconv.GEN_AI_OUTPUT_MESSAGES, semconv.OUTPUT_VALUE):
        assert streamed[key] == not_streamed[key]


def test_a_streamed_completion_of_an_openai_text_model_has_the_price_litellm_logs(litellm_spans, lm_server, unique,
                                                                                  monkeypatch):
    """`openai/gpt-3.5-turbo-instruct` goes to the legacy completions API, where LiteLLM's table prices it under
    `text-completion-openai/`: without a usage chunk the span's counted tokens have the price LiteLLM's own callbacks
    get for the stream (`response_cost`), not an unknown one (an async stream is priced by the same code)."""
    logged = []

    def log_price(kwargs, *_):
        if kwargs.get("response_cost") is not None:  # LiteLLM also calls it for each chunk, without a cost
            logged.append(kwargs["response_cost"])

    monkeypatch.setattr(litellm, "success_callback", [log_price])
    request = _ask(lm_server, unique, model="openai/gpt-3.5-turbo-instruct", prompt=[f"Say hi {unique}", "bye"],
                   stream=True)
    before = lm_server.text_requests

    chunks = list(litellm.text_completion(**request))
    deadline = time.monotonic() + 10
    while not logged and time.monotonic() < deadline:  # LiteLLM logs a stream's end on a thread of its own
        time.sleep(0.01)

    assert chunks and lm_server.text_requests == before + 1 and len(logged) == 1
    (span,) = litellm_spans()
    attributes = span.attributes
    assert attributes[semconv.USAGE_ESTIMATED] is True and semconv.COST_UNKNOWN not in attributes
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(logged[0], rel=1e-9)
