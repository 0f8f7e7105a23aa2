"""A request sent again is a span of its own, however it is sent again: by the OpenAI SDK beneath LiteLLM (its own
retries), or by LiteLLM's retrying helpers (`completion_with_retries` and kin), which call LiteLLM through a reference
of their own, not the package attribute. One span per request the stand-in server saw, the failed ones ERROR, all
siblings under the caller's span; tokens, cost and `track()` are the server's bill."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import traceback

import litellm
import pytest
from litellm_span import assert_billed_once, server_counts, server_since
from litellm_span import litellm_price as _price
from opentelemetry.instrumentation.utils import suppress_instrumentation

import lmscope
from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

QUESTION = "What is the capital of France?"
OUTAGE = (500, "The server had an error while processing your request.")
SDK_ERROR = "InternalServerError: Error code: 500 - The server had an error while processing your request."
"""The status of a request's span that the OpenAI SDK sent again: the error the SDK builds for that answer."""
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
    answered = getattr(lm_server, counter)
    # the first attempt fails, the second is answered (the helpers turn the OpenAI SDK's own retries off)
    with _outage(lm_server, 1) as before, litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(helper, **request)

    assert (getattr(lm_server, counter) - answered, lm_server.failed_requests - before[1]) == (1, 1)
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
    with _outage(lm_server, 2) as before, pytest.raises(litellm.InternalServerError) as raised:
        litellm.completion_with_retries(model="openai/gpt-4o-mini", num_retries=2, api_base=lm_server.base_url,
                                        api_key="sk-anything", messages=[{"role": "user", "content": unique}])
    assert "The server had an error" in str(raised.value)
    assert lm_server.failed_requests - before[1] == 2
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


@contextlib.contextmanager
def _outage(lm_server, count, model="gpt-4o-mini"):
    """The stand-in server fails the next `count` requests for `model` with OUTAGE (a 500, which the OpenAI SDK
    retries); yields the server's counts before: (answered chat requests, failed requests, billed chat tokens)."""
    lm_server.transient_failures[model] = [OUTAGE] * count
    try:
        yield server_counts(lm_server)
    finally:
        lm_server.transient_failures.pop(model, None)


def _request(lm_server, unique, **options):
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"{QUESTION} {unique}"}],
            "api_base": lm_server.base_url, "api_key": "sk-anything", **options}


def _request_attributes(answered, failed):
    """The attributes `failed` must carry: those of `answered` it shares (what the request was), and error.type."""
    return {**{key: value for key, value in answered.attributes.items() if key in failed.attributes},
            semconv.ERROR_TYPE: "InternalServerError"}


def _exception_types(span):
    return [event.attributes["exception.type"] for event in span.events if event.name == "exception"]


def _litellm_error_type():
    """The exception type LiteLLM's own InternalServerError is recorded as (the SDK's is `openai.` and the same
    name)."""
    return f"{litellm.InternalServerError.__module__}.{litellm.InternalServerError.__qualname__}"


@pytest.mark.parametrize("function", ["completion", "acompletion"])
def test_each_request_the_openai_sdk_sends_again_is_a_span(litellm_spans, lm_server, unique, tree, function):
    """Without `num_retries` LiteLLM leaves the OpenAI SDK's own retries at their default (2): the first two requests
    fail, the SDK sends the request a third time, answered. Three requests, three spans under the caller's."""
    with _outage(lm_server, 2) as before, track() as usage, litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(function, **_request(lm_server, unique, temperature=0.2))

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed) == (1, 2)
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o-mini", [])] * 3)]
    *resent, last, _handler = spans
    for span in resent:  # what the request was, and why it failed: the SDK's error for the server's 500
        assert dict(span.attributes) == _request_attributes(last, span)
        assert (span.status.status_code.name, span.status.description) == ("ERROR", SDK_ERROR)
        assert _exception_types(span) == ["openai.InternalServerError"]
    assert resent[0].end_time <= resent[1].start_time and resent[1].end_time <= last.start_time
    assert (last.status.status_code.name, last.events) == ("UNSET", ())
    assert last.attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert billed == (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert_billed_once(last, usage, billed)  # the failed requests billed nothing


def _failing_call_frames(request, is_async):
    """Call LiteLLM while every request fails; (its error, the frames of its traceback as (file, function))."""
    with pytest.raises(litellm.InternalServerError) as raised:
        _call("acompletion" if is_async else "completion", **request)
    return raised.value, [(frame.filename, frame.name) for frame in traceback.extract_tb(raised.value.__traceback__)]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("num_retries", "sdk_resends"), [(None, 2), (1, 1)], ids=["sdk", "sdk-then-litellm"])
def test_when_every_request_fails_the_app_gets_litellms_error_as_untraced(litellm_spans, lm_server, unique,
                                                                          is_async, num_retries, sdk_resends):
    """Three requests fail: without `num_retries` the SDK sends the first again twice; with `num_retries=1` once,
    then LiteLLM calls it once more. The app gets the error LiteLLM raises untraced (the async path re-raises the
    first call's error), with the same traceback."""
    request = _request(lm_server, unique, **({} if num_retries is None else {"num_retries": num_retries}))
    with _outage(lm_server, 3), suppress_instrumentation():  # as LiteLLM raises it, untraced
        untraced_error, untraced = _failing_call_frames(request, is_async)
    with _outage(lm_server, 3) as before:
        error, frames = _failing_call_frames(request, is_async)

    assert server_since(lm_server, before) == (0, 3, (0, 0))
    assert (type(error), str(error), frames) == (type(untraced_error), str(untraced_error), untraced)
    assert not [name for name, _function in frames if name.startswith(os.path.dirname(lmscope.__file__))]
    spans = litellm_spans()
    assert [(span.name, span.status.status_code.name, span.attributes[semconv.ERROR_TYPE]) for span in spans] == [
        ("chat gpt-4o-mini", "ERROR", "InternalServerError")] * 3
    # the SDK's errors for the requests it sent again, then LiteLLM's for each call that failed
    assert [_exception_types(span) for span in spans] == [["openai.InternalServerError"]] * sdk_resends + [
        [_litellm_error_type()]] * (3 - sdk_resends)
    assert type(error) is litellm.InternalServerError


@pytest.mark.parametrize("function", ["completion", "acompletion"])
@pytest.mark.parametrize(("num_retries", "failures"), [(None, 1), (1, 2)], ids=["sdk", "sdk-then-litellm"])
def test_a_stream_whose_first_requests_failed_is_failed_spans_then_the_streams(litellm_spans, lm_server, unique,
                                                                              function, num_retries, failures):
    """The stream comes from the SDK's second request, or from LiteLLM's retry once the SDK gave up: the failed
    requests' spans end at once, the stream's when the stream does."""
    request = _request(lm_server, unique, stream=True, stream_options={"include_usage": True},
                       **({} if num_retries is None else {"num_retries": num_retries}))

    def read(chunks):
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    async def read_async():
        stream = await litellm.acompletion(**request)
        assert [span.status.status_code.name for span in litellm_spans()] == ["ERROR"] * failures
        return read([chunk async for chunk in stream])

    with _outage(lm_server, failures) as before:
        if function == "completion":
            stream = litellm.completion(**request)
            assert [span.status.status_code.name for span in litellm_spans()] == ["ERROR"] * failures
            text = read(stream)
        else:
            text = asyncio.run(read_async())

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed) == (1, failures)
    *failed_spans, streamed = litellm_spans()
    # The SDK closes a streamed request's failed answer unread before it sends the request again: the error it
    # builds for that answer has the status code, not the server's message.
    assert failed_spans[0].status.description == "InternalServerError: Error code: 500"
    assert [_exception_types(span) for span in failed_spans] == [["openai.InternalServerError"]] + [
        [_litellm_error_type()]] * (failures - 1)
    assert streamed.status.status_code.name == "UNSET"
    assert billed[1] == count_tokens(text)
    assert (streamed.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            streamed.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    assert semconv.USAGE_ESTIMATED not in streamed.attributes
    assert streamed.attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(_price(*billed), rel=1e-9)


def test_an_embedding_request_sent_again_is_a_span_of_its_own(litellm_spans, lm_server):
    before = (lm_server.embedding_requests, lm_server.embedding_tokens, lm_server.failed_requests)
    with _outage(lm_server, 1, model="text-embedding-3-small"):
        response = litellm.embedding(model="openai/text-embedding-3-small", input=["Paris"],
                                     api_base=lm_server.base_url, api_key="sk-anything")

    billed = lm_server.embedding_tokens - before[1]
    assert (lm_server.embedding_requests - before[0], lm_server.failed_requests - before[2]) == (1, 1)
    failed, answered = litellm_spans()
    assert [span.name for span in (failed, answered)] == ["embeddings text-embedding-3-small"] * 2
    assert dict(failed.attributes) == _request_attributes(answered, failed)
    assert answered.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens == billed


@pytest.mark.parametrize("function", ["completion", "acompletion"])
@pytest.mark.parametrize(("num_retries", "failures"), [(1, 2), (2, 4)], ids=["1-retry", "2-retries"])
def test_litellms_num_retries_are_a_span_per_request_after_the_sdks(litellm_spans, lm_server, unique, tree,
                                                                     function, num_retries, failures):
    """`num_retries=N` is two retry layers (docs/litellm-internals.md §6): the OpenAI SDK sends the request N more
    times, then LiteLLM, once the SDK gave up, calls it N more times (each one request). `failures` requests fail,
    the next is answered: every request is a span, siblings under the caller's span, in the order sent."""
    with _outage(lm_server, failures) as before, track() as usage, \
            litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(function, **_request(lm_server, unique, num_retries=num_retries))

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed) == (1, failures)
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o-mini", [])] * (failures + 1))]
    *requests, _handler = spans  # in the order sent: each request's span ends before the next one starts
    # the SDK's errors for the requests it sent again, then LiteLLM's for each of its calls that failed
    assert [_exception_types(span) for span in requests] == [["openai.InternalServerError"]] * num_retries + [
        [_litellm_error_type()]] * (failures - num_retries) + [[]]
    assert [span.attributes.get(semconv.ERROR_TYPE) for span in requests] == ["InternalServerError"] * failures + [
        None]
    assert all(earlier.end_time <= later.start_time for earlier, later in itertools.pairwise(requests))
    answer = requests[-1]
    assert (answer.status.status_code.name, response.usage.prompt_tokens, response.usage.completion_tokens) == (
        "UNSET", *billed)
    assert_billed_once(answer, usage, billed)


@pytest.mark.parametrize("function", ["responses", "aresponses"])
def test_litellms_num_retries_of_a_responses_call_are_a_span_per_request(litellm_spans, lm_server, unique, tree,
                                                                          function):
    """`responses` reaches the provider through LiteLLM's own HTTP client, which does not retry: `num_retries=1`
    with one failure is LiteLLM's retry only, two requests (the async path hands LiteLLM's retry helper its own
    `aresponses`)."""
    text = f"{QUESTION} {unique}"
    before = lm_server.responses_requests
    with _outage(lm_server, 1) as outage, litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(function, model="openai/gpt-4o-mini", input=text, api_base=lm_server.base_url,
                         api_key="sk-anything", num_retries=1)

    assert (lm_server.responses_requests - before, lm_server.failed_requests - outage[1]) == (1, 1)
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o-mini", []), ("chat gpt-4o-mini", [])])]
    failed, answered, _handler = spans
    # LiteLLM's Responses path maps the outage's error body to BadRequestError (docs/litellm-internals.md §5)
    assert (failed.status.status_code.name, failed.attributes[semconv.ERROR_TYPE]) == ("ERROR", "BadRequestError")
    billed = (response.usage.input_tokens, response.usage.output_tokens)
    assert billed == (count_prompt_tokens([{"role": "user", "content": text}]),
                      count_tokens(response.output[0].content[0].text))
    assert (answered.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            answered.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed


@pytest.mark.parametrize(("failing", "first_error"), [("request_failed", "litellm"), ("hand_over", "openai")])
def test_a_fault_in_tracing_a_retry_leaves_the_call_and_its_result_alone(litellm_spans, lm_server, unique,
                                                                         swallow_internal_errors, monkeypatch,
                                                                         failing, first_error):
    """`num_retries=1`, two failed requests: the SDK's resend, then LiteLLM's retry, answered. When lmscope cannot
    trace one of the two, that retry stays inside the span before it (two spans for three requests), nothing breaks
    and the app gets LiteLLM's answer. The first span ends with LiteLLM's error (the SDK's resend untraced) or the
    SDK's (LiteLLM's retry untraced, inside the answered span)."""
    from lmscope.instrumentation.litellm._spans import LiteLLMRuntime

    def broken(*_args):
        raise RuntimeError("lmscope fault")

    monkeypatch.setattr(LiteLLMRuntime, failing, broken)
    with _outage(lm_server, 2) as before:
        response = litellm.completion(**_request(lm_server, unique, num_retries=1))

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed, billed) == (1, 2, (response.usage.prompt_tokens, response.usage.completion_tokens))
    spans = litellm_spans()
    assert [span.status.status_code.name for span in spans] == ["ERROR", "UNSET"]
    assert _exception_types(spans[0]) == [
        _litellm_error_type() if first_error == "litellm" else "openai.InternalServerError"]
    assert (spans[-1].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            spans[-1].attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
