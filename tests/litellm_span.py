"""The attributes every finished LiteLLM `chat` span on the stand-in server carries, popped and checked in one go.

`pop_litellm_chat(attributes, response, usage, messages, answer)` pops usage (both conventions, cache read 0), cost
(`gen_ai.usage.cost` = `llm.cost.total`: LiteLLM's price of `usage`), engine, kind, operation, provider and model
(`openai/gpt-4o-mini`), the response's model, id and finish reason, and the request's messages and the answer (as
`input.value`/`output.value` and structured messages), so an exhaustive attribute test stays exhaustive. Import it as
`from litellm_span import pop_litellm_chat` (tests/ is on sys.path through tests/conftest.py).

`collected(finished, count)` / `await acollected(finished, count)` wait for the spans of streams the test dropped.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import litellm
import pytest
from chat_messages import pop_messages

from lmscope.telemetry import _semconv as semconv


def litellm_price(prompt_tokens: int, completion_tokens: int, model: str = "gpt-4o-mini") -> float:
    """LiteLLM's price of a call of `model` (its local model table)."""
    prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens,
                                                          completion_tokens=completion_tokens)
    return float(prompt_cost + completion_cost)


def assert_billed_once(span: Any, usage: Any, billed: tuple[int, int]) -> None:
    """The answered request's `span` has the server's bill `billed` (prompt, completion tokens of a gpt-4o-mini
    call) and LiteLLM's price of it, and the `track()` block `usage` counted that one call, nothing else."""
    assert (span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    price = pytest.approx(litellm_price(*billed), rel=1e-9)
    assert span.attributes[semconv.GEN_AI_USAGE_COST] == price
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"], totals["cost_usd"]) == (1, *billed, price)


_COLLECTION_S = 10.0
"""How long a dropped stream may take to be collected: LiteLLM's logging thread holds it a moment after its first
chunk (docs/litellm-internals.md §3)."""


def server_counts(lm_server: Any) -> tuple[int, int, tuple[int, int]]:
    """The stand-in server's counts: (answered chat requests, failed requests, billed chat tokens)."""
    return lm_server.requests, lm_server.failed_requests, lm_server.billed_chat_tokens


def server_since(lm_server: Any, before: tuple[int, int, tuple[int, int]]) -> tuple[int, int, tuple[int, int]]:
    """What the server did since `server_counts` gave `before`: (answered, failed, billed (prompt, completion))."""
    billed = lm_server.billed_chat_tokens
    return (lm_server.requests - before[0], lm_server.failed_requests - before[1],
            (billed[0] - before[2][0], billed[1] - before[2][1]))


def collected(finished: Callable[[], Sequence[Any]], count: int) -> Sequence[Any]:
    """`finished()` once it holds `count` spans (or the wait ran out): collects garbage meanwhile, so that the span of
    a stream the test dropped ends."""
    deadline = time.monotonic() + _COLLECTION_S
    while len(finished()) < count and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return finished()


async def acollected(finished: Callable[[], Sequence[Any]], count: int) -> Sequence[Any]:
    """`collected` inside an event loop, which keeps running: an async stream's generators are closed by tasks the
    loop runs once they are collected."""
    deadline = time.monotonic() + _COLLECTION_S
    while len(finished()) < count and time.monotonic() < deadline:
        gc.collect()
        await asyncio.sleep(0.05)
    return finished()


def pop_litellm_chat(attributes: dict[str, Any], response: Any, usage: tuple[int, int, int],
                     messages: list[dict[str, Any]], answer: str) -> None:
    """`usage`: (input, output, total) tokens as the response reports them."""
    input_tokens, output_tokens, total_tokens = usage
    assert attributes.pop(semconv.GEN_AI_USAGE_INPUT_TOKENS) == attributes.pop(semconv.LLM_TOKEN_COUNT_PROMPT) \
        == input_tokens
    assert attributes.pop(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) == attributes.pop(
        semconv.LLM_TOKEN_COUNT_COMPLETION) == output_tokens
    assert attributes.pop(semconv.LLM_TOKEN_COUNT_TOTAL) == total_tokens
    assert attributes.pop(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == attributes.pop(
        semconv.LLM_TOKEN_COUNT_CACHE_READ) == 0
    recorded = attributes.pop(semconv.GEN_AI_USAGE_COST)
    assert recorded == pytest.approx(litellm_price(input_tokens, output_tokens), rel=1e-9)
    assert attributes.pop(semconv.LLM_COST_TOTAL) == recorded
    assert attributes.pop(semconv.COST_SOURCE) == "litellm"
    assert attributes.pop(semconv.CACHE_HIT) is False
    assert attributes.pop(semconv.LM_ENGINE) == "litellm"
    assert attributes.pop(semconv.SPAN_KIND) == "LLM"
    assert attributes.pop(semconv.PHASE) == "serve"
    assert attributes.pop(semconv.GEN_AI_OPERATION_NAME) == "chat"
    assert attributes.pop(semconv.GEN_AI_PROVIDER_NAME) == attributes.pop(semconv.LLM_PROVIDER) == "openai"
    assert attributes.pop(semconv.GEN_AI_REQUEST_MODEL) == attributes.pop(semconv.LLM_MODEL_NAME) == "gpt-4o-mini"
    assert attributes.pop(semconv.GEN_AI_RESPONSE_MODEL) == response.model
    assert attributes.pop(semconv.GEN_AI_RESPONSE_ID) == response.id
    assert attributes.pop(semconv.GEN_AI_RESPONSE_FINISH_REASONS) == ("stop",)
    assert json.loads(attributes.pop(semconv.INPUT_VALUE)) == messages
    assert json.loads(attributes.pop(semconv.OUTPUT_VALUE)) == [answer]
    assert attributes.pop(semconv.INPUT_MIME_TYPE) == attributes.pop(semconv.OUTPUT_MIME_TYPE) == "application/json"
    pop_messages(attributes, messages, [answer])
