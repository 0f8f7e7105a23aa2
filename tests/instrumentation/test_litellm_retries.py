"""LiteLLM's retrying helpers (`completion_with_retries` and kin) call LiteLLM through a reference of their own,
not the package attribute: each attempt must still be one span, the failed one ERROR, under the caller's span."""

from __future__ import annotations

import asyncio
import inspect

import litellm
import pytest
from litellm_span import litellm_price as _price

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv

QUESTION = "What is the capital of France?"
OUTAGE = (500, "The server had an error while processing your request.")
# (helper, the request's shape, the stand-in's counter of answered requests of that shape, the error LiteLLM makes
# of the outage: its Responses API path maps the error body's `invalid_request_error` type, not the 500 status)
HELPERS = [("completion_with_retries", "messages", "requests", "InternalServerError"),
           ("acompletion_with_retries", "messages", "requests", "InternalServerError"),
           ("responses_with_retries", "input", "responses_requests", "BadRequestError"),
           ("aresponses_with_retries", "input", "responses_requests", "BadRequestError")]


def _call(helper, **request):
    result = getattr(litellm, helper)(**request)
    if inspect.iscoroutine(result):
        async def wait():
            return await result

        return asyncio.run(wait())
    return result


@pytest.mark.parametrize(("helper", "shape", "counter", "error"), HELPERS, ids=[entry[0] for entry in HELPERS])
def test_each_attempt_is_a_span_and_the_failed_one_is_an_error(litellm_spans, lm_server, unique, helper, shape,
                                                               counter, error):
    text = f"{QUESTION} {unique}"
    request = {"model": "openai/gpt-4o-mini", "api_base": lm_server.base_url, "api_key": "sk-anything",
               "num_retries": 3, shape: [{"role": "user", "content": text}] if shape == "messages" else text}
    answered, failed = getattr(lm_server, counter), lm_server.failed_requests
    lm_server.transient_failures["gpt-4o-mini"] = [OUTAGE]  # the first attempt fails, the second is answered
    try:
        with litellm_spans.tracer.start_as_current_span("app.handler"):
            response = _call(helper, **request)
    finally:
        lm_server.transient_failures.pop("gpt-4o-mini", None)

    assert (getattr(lm_server, counter) - answered, lm_server.failed_requests - failed) == (1, 1)
    first, second, handler = litellm_spans()  # one span per request the server saw: 2 attempts, nothing else
    assert {first.parent.span_id, second.parent.span_id} == {handler.context.span_id}
    assert (first.name, first.status.status_code.name) == ("chat gpt-4o-mini", "ERROR")
    assert first.attributes[semconv.ERROR_TYPE] == error
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in first.attributes
    assert (second.name, second.status.status_code.name) == ("chat gpt-4o-mini", "UNSET")
    usage = response.usage
    prompt = count_prompt_tokens([{"role": "user", "content": text}])
    billed = (usage.prompt_tokens, usage.completion_tokens) if shape == "messages" else (
        usage.input_tokens, usage.output_tokens)
    assert billed[0] == prompt and billed[1] == count_tokens(
        response.choices[0].message.content if shape == "messages" else response.output[0].content[0].text)
    assert second.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == billed[0]
    assert second.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == billed[1]
    assert second.attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(_price(*billed), rel=1e-9)


def test_a_retry_that_never_succeeds_raises_litellms_error_after_a_span_per_attempt(litellm_spans, lm_server,
                                                                                   unique):
    failed = lm_server.failed_requests
    lm_server.transient_failures["gpt-4o-mini"] = [OUTAGE] * 2
    try:
        with pytest.raises(litellm.InternalServerError) as raised:
            litellm.completion_with_retries(model="openai/gpt-4o-mini", num_retries=2, api_base=lm_server.base_url,
                                            api_key="sk-anything", messages=[{"role": "user", "content": unique}])
    finally:
        lm_server.transient_failures.pop("gpt-4o-mini", None)
    assert "The server had an error" in str(raised.value)
    assert lm_server.failed_requests - failed == 2
    spans = litellm_spans()
    assert [(s.name, s.status.status_code.name) for s in spans] == [("chat gpt-4o-mini", "ERROR")] * 2


def test_an_original_function_the_caller_chose_is_left_alone(litellm_spans, lm_server, unique):
    """`original_function=litellm.acompletion` is the traced package attribute already: still one span a call."""
    before = lm_server.requests
    response = asyncio.run(litellm.acompletion_with_retries(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": unique}], api_base=lm_server.base_url,
        api_key="sk-anything", original_function=litellm.acompletion))
    assert lm_server.requests == before + 1
    (span,) = litellm_spans()
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens
