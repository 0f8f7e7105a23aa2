"""LiteLLM's Responses API (`litellm.responses` / `aresponses`) against the stand-in's /v1/responses: one `chat`
span per provider request, tokens equal to the server's bill, LiteLLM's price, streams that end with the stream."""

from __future__ import annotations

import asyncio
import json

import dspy
import litellm
import pytest
from litellm_span import litellm_price as _price
from litellm_span import pop_litellm_chat

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

MODEL = "openai/gpt-4o-mini"
INSTRUCTIONS = "Answer in one sentence."


def _ask(lm_server, unique, **kwargs):
    return {"model": MODEL, "input": f"What is the capital of France? {unique}", "instructions": INSTRUCTIONS,
            "api_base": lm_server.base_url, "api_key": "sk-anything", **kwargs}


def _messages(request):
    """What the server reads the request as (and counts): the instructions, then the input as a user message."""
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": request["input"]}]


def _text(response):
    (item,) = response.output
    (part,) = item.content
    return part.text


def test_responses_is_one_chat_span_with_the_servers_bill(litellm_spans, lm_server, unique):
    before = lm_server.responses_requests
    request = _ask(lm_server, unique, temperature=0.3, max_output_tokens=200)
    with litellm_spans.tracer.start_as_current_span("app.handler"):
        response = litellm.responses(**request)

    assert lm_server.responses_requests == before + 1
    span, handler = litellm_spans()
    assert span.parent.span_id == handler.context.span_id
    attributes = dict(span.attributes)
    usage, text = response.usage, _text(response)
    assert usage.input_tokens == count_prompt_tokens(_messages(request))
    assert usage.output_tokens == count_tokens(text)
    assert (span.name, span.kind.name) == ("chat gpt-4o-mini", "CLIENT")
    pop_litellm_chat(attributes, response, (usage.input_tokens, usage.output_tokens, usage.total_tokens),
                     _messages(request), text)
    assert attributes.pop(semconv.GEN_AI_REQUEST_TEMPERATURE) == 0.3
    assert attributes.pop(semconv.GEN_AI_REQUEST_MAX_TOKENS) == 200
    assert json.loads(attributes.pop(semconv.LLM_INVOCATION_PARAMETERS)) == {"temperature": 0.3,
                                                                             "max_output_tokens": 200}
    assert attributes == {}


def test_async_responses_nest_under_the_callers_span_and_track_counts_them(litellm_spans, lm_server, unique):
    tracer = litellm_spans.tracer
    before = lm_server.responses_requests
    # A list of messages as input, with text parts: read as the same chat the server counts.
    request = _ask(lm_server, unique, input=[{"role": "user", "content": [
        {"type": "input_text", "text": f"Which river flows through Paris? {unique}"}]}])

    async def main():
        with tracer.start_as_current_span("app.handler"):
            return await asyncio.gather(litellm.aresponses(**request), litellm.aresponses(**request))

    with track() as usage:
        responses = asyncio.run(main())

    *calls, handler = litellm_spans()
    assert lm_server.responses_requests - before == len(calls) == 2
    assert [s.name for s in calls] == ["chat gpt-4o-mini"] * 2 and handler.name == "app.handler"
    assert {s.parent.span_id for s in calls} == {handler.context.span_id}
    prompt = count_prompt_tokens([{"role": "system", "content": INSTRUCTIONS},
                                  {"role": "user", "content": f"Which river flows through Paris? {unique}"}])
    assert [r.usage.input_tokens for r in responses] == [prompt, prompt]
    totals = usage.total()
    assert totals["calls"] == 2
    assert totals["input_tokens"] == 2 * prompt
    assert totals["output_tokens"] == sum(count_tokens(_text(r)) for r in responses)
    assert totals["cost_usd"] == pytest.approx(sum(_price(prompt, r.usage.output_tokens) for r in responses),
                                               rel=1e-9)
    for span in calls:
        assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == prompt
        assert json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
            {"role": "user", "parts": [{"type": "text", "content": f"Which river flows through Paris? {unique}"}]}]


def _consume(stream, is_async):
    if not is_async:
        return list(stream)

    async def read():
        return [event async for event in await stream]

    return asyncio.run(read())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_responses_stream_is_one_span_that_ends_with_the_stream(litellm_spans, lm_server, unique, is_async):
    before = lm_server.responses_requests
    request = _ask(lm_server, unique, stream=True)
    stream = (litellm.aresponses if is_async else litellm.responses)(**request)
    if not is_async:
        assert type(stream).__name__ == "SyncResponsesAPIStreamingIterator" and not hasattr(stream, "__anext__")
        assert litellm_spans() == ()  # open until the stream ends
    events = _consume(stream, is_async)

    assert lm_server.responses_requests == before + 1
    (span,) = litellm_spans()
    attributes = span.attributes
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    prompt = count_prompt_tokens(_messages(request))
    assert (span.name, events[-1].type) == ("chat gpt-4o-mini", "response.completed")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens == prompt
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens == count_tokens(text)
    assert semconv.USAGE_ESTIMATED not in attributes  # the provider's usage, from `response.completed`
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(_price(prompt, count_tokens(text)), rel=1e-9)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert [event.name for event in span.events] == ["first_token"]
    assert json.loads(attributes[semconv.OUTPUT_VALUE]) == [text]
    assert semconv.STREAM_ABANDONED not in attributes and span.status.status_code.name == "UNSET"


def test_a_responses_stream_closed_early_is_estimated_and_marked(litellm_spans, lm_server, unique):
    request = _ask(lm_server, unique, stream=True)
    stream = litellm.responses(**request)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()

    (span,) = litellm_spans()
    attributes = span.attributes
    assert attributes[semconv.STREAM_ABANDONED] is True and attributes[semconv.USAGE_ESTIMATED] is True
    assert span.status.status_code.name == "UNSET"  # the program closed it: not an error
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == litellm.token_counter(model=MODEL,
                                                                                   messages=_messages(request))
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == litellm.token_counter(
        model=MODEL, text=seen[-1].delta, count_response_tokens=True)


def test_a_responses_error_is_recorded_and_reaches_the_app_unchanged(litellm_spans, lm_server, unique):
    lm_server.failures["broken-model"] = (401, "Incorrect API key provided: sk-abc...")
    before = lm_server.failed_requests
    try:
        with pytest.raises(litellm.AuthenticationError) as raised:
            litellm.responses(**{**_ask(lm_server, unique), "model": "openai/broken-model"})
    finally:
        del lm_server.failures["broken-model"]
    assert lm_server.failed_requests == before + 1
    assert "Incorrect API key provided" in str(raised.value)
    (span,) = litellm_spans()
    assert (span.name, span.status.status_code.name) == ("chat broken-model", "ERROR")
    assert span.attributes[semconv.ERROR_TYPE] == "AuthenticationError"
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


def test_dspy_on_the_responses_api_stays_one_span_per_call(litellm_spans, spans, lm_server, make_lm, engine,
                                                           unique):
    """DSPy's `model_type="responses"` calls `litellm.responses` on its litellm engine: inside DSPy's LM span, which
    stays the one span of the call, on both engines, with the tokens the server billed."""
    lm = make_lm(model_type="responses", cache=False)
    before = lm_server.responses_requests
    lm_server.reset_prefix_cache()  # no cached prompt tokens (the other engine's run shares this prompt's prefix)
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question=f"Capital of France? {unique}")
    entry = lm.history[-1]

    assert lm_server.responses_requests == before + 1
    assert litellm_spans() == ()
    (call,) = [s for s in spans() if s.name.startswith("chat")]
    assert call.name == "chat gpt-4o-mini"
    # DSPy sends its system message as `instructions` and its user message as `input`: the server counts them as chat
    assert call.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == count_prompt_tokens(entry["messages"])
    answer = entry["outputs"][0]  # the native engine gives the Responses answer as a dict with its text
    assert call.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == count_tokens(
        answer["text"] if isinstance(answer, dict) else answer)
    assert call.attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(
        _price(count_prompt_tokens(entry["messages"]), call.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]), rel=1e-9)
