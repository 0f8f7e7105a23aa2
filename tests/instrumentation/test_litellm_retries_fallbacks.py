"""`fallbacks=[...]` (or `litellm.model_fallbacks`): LiteLLM calls `litellm.acompletion` once per model, the asked one
first, until one answers (docs/litellm-internals.md §6). Each of those calls is a span of its own, with its own model,
status and error, siblings under the caller's span; the fallback call itself has none. One span per request the
stand-in server saw; tokens, cost and `track()` are the server's bill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback

import litellm
import pytest
from litellm_span import litellm_price as _price
from opentelemetry.instrumentation.utils import suppress_instrumentation

import lmscope
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

GONE = (404, "The model `gpt-4o` does not exist or you do not have access to it.")
"""What the asked model's requests get: an error the OpenAI SDK does not send again, one request per model."""
CALLERS = ["sync", "sync-in-event-loop", "async"]
"""`completion` runs the fallbacks in a new event loop: in this thread, or (called while a loop runs here) in a
thread of its own; `acompletion` awaits them."""


def _request(lm_server, unique, **options):
    return {"model": "openai/gpt-4o", "fallbacks": ["openai/gpt-4o-mini"],
            "messages": [{"role": "user", "content": f"What is the capital of France? {unique}"}],
            "api_base": lm_server.base_url, "api_key": "sk-anything", **options}


def _call(caller, request):
    if caller == "sync":
        return litellm.completion(**request)

    async def run():
        return litellm.completion(**request) if caller == "sync-in-event-loop" else await litellm.acompletion(
            **request)

    return asyncio.run(run())


@contextlib.contextmanager
def _failing(lm_server, *models):
    """The stand-in server fails every request for `models`; yields its counts before: (answered chat requests,
    failed requests, billed chat tokens)."""
    for model in models:
        lm_server.failures[model] = GONE
    try:
        yield lm_server.requests, lm_server.failed_requests, lm_server.billed_chat_tokens
    finally:
        for model in models:
            lm_server.failures.pop(model, None)


def _since(lm_server, before):
    billed = lm_server.billed_chat_tokens
    return (lm_server.requests - before[0], lm_server.failed_requests - before[1],
            (billed[0] - before[2][0], billed[1] - before[2][1]))


@pytest.mark.parametrize("caller", CALLERS)
def test_a_failed_model_and_the_fallback_that_answered_are_a_span_each(litellm_spans, lm_server, unique, tree,
                                                                       caller):
    with _failing(lm_server, "gpt-4o") as before, track() as usage, \
            litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(caller, _request(lm_server, unique, temperature=0.2))

    answered, failed, billed = _since(lm_server, before)
    assert (answered, failed) == (1, 1)
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])]
    first, fallback, handler = spans
    assert {first.parent.span_id, fallback.parent.span_id} == {handler.context.span_id}
    assert (first.status.status_code.name, first.attributes[semconv.ERROR_TYPE]) == ("ERROR", "NotFoundError")
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in first.attributes
    assert first.end_time <= fallback.start_time
    assert (fallback.status.status_code.name, fallback.events) == ("UNSET", ())
    assert semconv.ERROR_TYPE not in fallback.attributes
    assert fallback.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert fallback.attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert billed == (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert (fallback.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            fallback.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    price = pytest.approx(_price(*billed), rel=1e-9)
    assert fallback.attributes[semconv.GEN_AI_USAGE_COST] == price
    totals = usage.total()  # the failed request billed nothing, and the answer is counted once
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"], totals["cost_usd"]) == (1, *billed, price)


def _failing_call_frames(caller, request):
    """Call LiteLLM while every model fails; (its error, the frames of its traceback as (file, function))."""
    with pytest.raises(Exception) as raised:  # LiteLLM raises a bare Exception once every model has failed
        _call(caller, request)
    return raised.value, [(frame.filename, frame.name) for frame in traceback.extract_tb(raised.value.__traceback__)]


@pytest.mark.parametrize("caller", CALLERS)
def test_when_every_model_fails_the_app_gets_litellms_error_as_untraced(litellm_spans, lm_server, unique, tree,
                                                                         caller):
    request = _request(lm_server, unique, fallbacks=["openai/gpt-4o-mini", "openai/gpt-4.1-nano"])
    models = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-nano")
    with _failing(lm_server, *models), suppress_instrumentation():  # as LiteLLM raises it, untraced
        untraced_error, untraced = _failing_call_frames(caller, request)
    with _failing(lm_server, *models) as before, litellm_spans.tracer.start_as_current_span("app.handler"):
        error, frames = _failing_call_frames(caller, request)

    assert _since(lm_server, before) == (0, 3, (0, 0))
    assert (type(error), str(error), frames) == (type(untraced_error), str(untraced_error), untraced)
    assert not [name for name, _function in frames if name.startswith(os.path.dirname(lmscope.__file__))]
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [(f"chat {model}", []) for model in models])]
    assert [(span.status.status_code.name, span.attributes[semconv.ERROR_TYPE]) for span in spans[:-1]] == [
        ("ERROR", "NotFoundError")] * 3

