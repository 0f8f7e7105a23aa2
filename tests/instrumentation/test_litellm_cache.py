"""LiteLLM's own response cache (`litellm.cache`): an answer it serves from the cache asked no provider, so its span
bills nothing, as a DSPy cache hit's does (`lmscope.cache.hit`, no tokens, $0, what it saved), and `track()` counts
what the stand-in server billed."""

from __future__ import annotations

import asyncio

import litellm
import pytest

# LiteLLM 1.110's cache lookup imports its proxy's audio logging, which needs `soundfile`: the dev extra has it, and
# without it every cache hit raises (with or without lmscope). Imported here so a missing one fails, never skips.
import soundfile  # noqa: F401

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

EMBEDDER = "openai/text-embedding-3-small"
BILLED = (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_COST,
          semconv.COST_SOURCE, semconv.CACHE_HIT, semconv.CACHE_SAVED_TOKENS, semconv.CACHE_SAVED_USD,
          semconv.USAGE_ESTIMATED)


@pytest.fixture
def litellm_cache():
    from litellm.caching.caching import Cache

    litellm.cache = Cache()  # in memory
    yield
    litellm.cache = None


def _price(model, prompt, completion=0):
    prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=prompt,
                                                          completion_tokens=completion)
    return pytest.approx(prompt_cost + completion_cost, rel=1e-9)


def _call(lm_server, unique, kind):
    """One call of `kind` (completion, acompletion, stream, embedding, responses) with LiteLLM's cache on; (prompt, completion)
    tokens its answer carries."""
    request = {"api_base": lm_server.base_url, "api_key": "sk-anything", "caching": True}
    if kind == "embedding":
        return litellm.embedding(model=EMBEDDER, input=[f"Paris {unique}"], **request).usage.prompt_tokens, 0
    if kind == "responses":
        question = f"What is the capital of France? {unique}"
        answer = litellm.responses(model="openai/gpt-4o-mini", input=question, **request).output[0].content[0].text
        return count_prompt_tokens([{"role": "user", "content": question}]), count_tokens(answer)
    messages = [{"role": "user", "content": f"What is the capital of France? {unique}"}]
    request.update(model="openai/gpt-4o-mini", messages=messages)
    if kind == "stream":
        stream = litellm.completion(**request, stream=True, stream_options={"include_usage": True})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    elif kind == "acompletion":
        text = asyncio.run(litellm.acompletion(**request)).choices[0].message.content
    else:
        text = litellm.completion(**request).choices[0].message.content
    return count_prompt_tokens(messages), count_tokens(text)


@pytest.mark.parametrize("kind", ["completion", "acompletion", "stream", "embedding", "responses"])
def test_an_answer_from_litellms_cache_bills_nothing_and_track_counts_the_servers_bill(litellm_spans, lm_server,
                                                                                      unique, litellm_cache, kind):
    counters = ("embedding_tokens",) if kind == "embedding" else (
        "billed_chat_tokens", "responses_requests" if kind == "responses" else "requests")
    before = [getattr(lm_server, counter) for counter in counters]
    with track() as usage:
        prompt, completion = _call(lm_server, unique, kind)
        assert _call(lm_server, unique, kind) == (prompt, completion)  # the same answer, from LiteLLM's cache
    billed = lm_server.embedding_tokens - before[0] if kind == "embedding" else (prompt, completion)
    if kind != "embedding":
        assert (lm_server.billed_chat_tokens, getattr(lm_server, counters[1])) == (
            (before[0][0] + prompt, before[0][1] + completion), before[1] + 1)

    model = EMBEDDER if kind == "embedding" else "openai/gpt-4o-mini"
    price = _price(model, prompt, completion)
    called, hit = ({key: span.attributes.get(key) for key in BILLED} for span in litellm_spans())
    output_tokens = None if kind == "embedding" else completion  # an embeddings span has no output tokens
    assert called == {**dict.fromkeys(BILLED), semconv.GEN_AI_USAGE_INPUT_TOKENS: prompt,
                      semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens, semconv.GEN_AI_USAGE_COST: price,
                      semconv.COST_SOURCE: "litellm", semconv.CACHE_HIT: False}
    assert hit == {**dict.fromkeys(BILLED), semconv.GEN_AI_USAGE_INPUT_TOKENS: 0,
                   semconv.GEN_AI_USAGE_OUTPUT_TOKENS: None if kind == "embedding" else 0,
                   semconv.GEN_AI_USAGE_COST: 0.0, semconv.COST_SOURCE: "lmscope", semconv.CACHE_HIT: True,
                   semconv.CACHE_SAVED_TOKENS: prompt + completion, semconv.CACHE_SAVED_USD: price}
    totals = usage.total()
    assert {key: totals[key] for key in ("calls", "input_tokens", "output_tokens", "cache_hits", "unpriced_calls")} == {
        "calls": 2, "input_tokens": billed if kind == "embedding" else prompt, "output_tokens": completion,
        "cache_hits": 1, "unpriced_calls": 0}
    assert (totals["cost_usd"], totals["saved_usd"]) == (price, price)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_an_answer_from_litellms_cache_names_the_provider_of_the_call_that_filled_it(litellm_spans, lm_server, unique,
                                                                                      litellm_cache, stream, is_async):
    """`model="gpt-4o-mini"` names its provider only through the answer (`_providers.provider_answered`), and the one
    LiteLLM's cache gives names none (a replayed stream calls its provider `cached_response`): the hit's span names
    where LiteLLM routes the model, as its cache handler resolves it (docs/litellm-internals.md §2), the provider of
    the call that filled the cache."""
    request = {"model": "gpt-4o-mini", "api_base": lm_server.base_url, "api_key": "sk-anything", "caching": True,
               "messages": [{"role": "user", "content": f"What is the capital of France? {unique}"}]}
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})

    async def call_async():
        response = await litellm.acompletion(**request)
        if stream:
            [chunk async for chunk in response]

    for _ in range(2):
        if is_async:
            asyncio.run(call_async())
        else:
            response = litellm.completion(**request)
            if stream:
                list(response)

    provider_keys = (semconv.GEN_AI_PROVIDER_NAME, semconv.LLM_PROVIDER)
    called, hit = ({key: span.attributes.get(key) for key in (semconv.CACHE_HIT, *provider_keys)}
                   for span in litellm_spans())
    assert called == {semconv.CACHE_HIT: False, **dict.fromkeys(provider_keys, "openai")}
    assert hit == {semconv.CACHE_HIT: True, **dict.fromkeys(provider_keys, "openai")}
