"""`fallbacks=[...]`: LiteLLM calls `litellm.acompletion` once per model, the asked one first, until one answers; with
`context_window_fallback_dict` it sends a request refused for its context window again to the fallback model; with
`model_list=` the sync `completion` sends every matching deployment the request at once (docs/litellm-internals.md
§6). Each request is a span of its own, with its own model, status and error, siblings under the caller's span; the
call that fans out has none. One span per request the stand-in server saw; tokens, cost and `track()` are the
server's bill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback

import litellm
import pytest
from litellm_span import assert_billed_once, server_counts, server_since
from litellm_span import litellm_price as _price
from opentelemetry.instrumentation.utils import suppress_instrumentation

import lmscope
from lmscope._lm_server import count_tokens
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
    """The stand-in server fails every request for `models`; yields its `server_counts` before."""
    for model in models:
        lm_server.failures[model] = GONE
    try:
        yield server_counts(lm_server)
    finally:
        for model in models:
            lm_server.failures.pop(model, None)


@contextlib.contextmanager
def _too_long_for(lm_server, model):
    """The stand-in server refuses every prompt for `model` as longer than its context window (OpenAI's
    `context_length_exceeded`, a 400 the OpenAI SDK does not send again); yields its `server_counts` before."""
    lm_server.context_windows[model] = 1
    try:
        yield server_counts(lm_server)
    finally:
        lm_server.context_windows.pop(model, None)


@pytest.mark.parametrize("caller", CALLERS)
def test_a_failed_model_and_the_fallback_that_answered_are_a_span_each(litellm_spans, lm_server, unique, tree,
                                                                       caller):
    with _failing(lm_server, "gpt-4o") as before, track() as usage, \
            litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(caller, _request(lm_server, unique, temperature=0.2))

    answered, failed, billed = server_since(lm_server, before)
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
    assert_billed_once(fallback, usage, billed)  # the failed request billed nothing, and the answer is counted once


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

    assert server_since(lm_server, before) == (0, 3, (0, 0))
    assert (type(error), str(error), frames) == (type(untraced_error), str(untraced_error), untraced)
    assert not [name for name, _function in frames if name.startswith(os.path.dirname(lmscope.__file__))]
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [(f"chat {model}", []) for model in models])]
    assert [(span.status.status_code.name, span.attributes[semconv.ERROR_TYPE]) for span in spans[:-1]] == [
        ("ERROR", "NotFoundError")] * 3



@pytest.mark.parametrize("caller", CALLERS)
def test_a_request_over_the_context_window_and_the_fallback_models_are_a_span_each(litellm_spans, lm_server, unique,
                                                                                   tree, caller):
    """LiteLLM sends the request again, to the model `context_window_fallback_dict` names, inside the call: the
    refused request's span ends with LiteLLM's error, the fallback's has its model, tokens and price (LiteLLM
    returns that response unpriced: LiteLLM's table prices it)."""
    request = _request(lm_server, unique, temperature=0.2,
                       context_window_fallback_dict={"openai/gpt-4o": "openai/gpt-4o-mini"})
    request.pop("fallbacks")
    with _too_long_for(lm_server, "gpt-4o") as before, track() as usage, \
            litellm_spans.tracer.start_as_current_span("app.handler"):
        response = _call(caller, request)

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed, response.model) == (1, 1, "gpt-4o-mini")
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])]
    refused, fallback, handler = spans
    assert {refused.parent.span_id, fallback.parent.span_id} == {handler.context.span_id}
    assert (refused.status.status_code.name, refused.attributes[semconv.ERROR_TYPE]) == (
        "ERROR", "ContextWindowExceededError")
    assert "maximum context length is 1 tokens" in refused.status.description
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in refused.attributes
    assert refused.end_time <= fallback.start_time
    assert (fallback.status.status_code.name, fallback.events) == ("UNSET", ())
    assert (fallback.attributes[semconv.GEN_AI_REQUEST_MODEL], fallback.attributes[semconv.GEN_AI_REQUEST_TEMPERATURE]
            ) == ("gpt-4o-mini", 0.2)
    assert billed == (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert_billed_once(fallback, usage, billed)


class ModelsInAnyCase(dict):
    """A caller's `context_window_fallback_dict` that looks model names up in any case."""

    def __contains__(self, model):
        return super().__contains__(model.lower())

    def __getitem__(self, model):
        return super().__getitem__(model.lower())


def test_a_context_window_fallback_mapping_of_the_callers_own_class_is_left_as_given(litellm_spans, lm_server,
                                                                                     unique):
    """lmscope sees LiteLLM fall back by handing it an equal dict of its own: for a mapping that looks models up its
    own way that was not equal, and LiteLLM raised instead of falling back. Such a mapping is left as it is: the
    fallback's request is inside the refused one's span, which ends with the answer."""
    request = _request(lm_server, unique, context_window_fallback_dict=ModelsInAnyCase(
        {"openai/gpt-4o": "openai/gpt-4o-mini"}))
    request.pop("fallbacks")
    request["model"] = "openai/GPT-4o"
    with _too_long_for(lm_server, "GPT-4o") as before:
        response = litellm.completion(**request)
    answered, failed, _billed = server_since(lm_server, before)
    assert (answered, failed, response.model) == (1, 1, "gpt-4o-mini")
    [span] = litellm_spans()
    assert (span.name, span.status.status_code.name) == ("chat GPT-4o", "UNSET")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"


def _model_list(lm_server, unique, *models, group="assistant"):
    """A call of the model group `group`, whose deployments are `models` on the stand-in server."""
    deployments = [{"model_name": group, "litellm_params": {
        "model": model, "api_base": lm_server.base_url, "api_key": "sk-anything"}} for model in models]
    return {"model": group, "model_list": deployments,
            "messages": [{"role": "user", "content": f"What is the capital of France? {unique}"}]}


def test_each_deployment_a_model_list_call_sends_a_request_is_a_span_under_the_callers(litellm_spans, lm_server,
                                                                                      unique, tree):
    """The sync `completion` sends every deployment of the group the request at once, on a thread pool, and returns
    the first answer: a span per request, each with its model, tokens and price, siblings under the caller's span."""
    before = server_counts(lm_server)
    with track() as usage, litellm_spans.tracer.start_as_current_span("app.handler"):
        litellm.completion(**_model_list(lm_server, unique, "openai/gpt-4o-mini", "openai/gpt-4o"))

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed) == (2, 0)
    spans = litellm_spans()
    (handler, requests), = tree(spans)
    assert (handler, sorted(requests)) == ("app.handler", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])
    counted = [(span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
               for span in spans[:-1]]
    assert tuple(map(sum, zip(*counted, strict=True))) == billed
    prices = [pytest.approx(_price(*tokens, model=span.attributes[semconv.GEN_AI_REQUEST_MODEL]), rel=1e-9)
              for span, tokens in zip(spans, counted, strict=False)]
    assert [span.attributes[semconv.GEN_AI_USAGE_COST] for span in spans[:-1]] == prices
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (2, *billed)
    assert totals["cost_usd"] == pytest.approx(sum(price.expected for price in prices), rel=1e-9)


def test_acompletion_with_a_model_list_is_the_one_request_it_sends(litellm_spans, lm_server, unique):
    """`acompletion` runs the sync `completion` with `acompletion=True`: the deployments' calls on the pool return
    coroutines, and `acompletion` awaits the first inside its own call, one request: one span. (`acompletion`
    resolves the group's provider first: the group must be a model LiteLLM can route.)"""
    before = server_counts(lm_server)
    request = _model_list(lm_server, unique, "openai/gpt-4o-mini", "openai/gpt-4o-mini", group="gpt-4o-mini")
    with track() as usage:
        response = asyncio.run(litellm.acompletion(**request))

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed, billed) == (1, 0, (response.usage.prompt_tokens, response.usage.completion_tokens))
    (span,) = litellm_spans()
    assert (span.name, span.attributes[semconv.GEN_AI_RESPONSE_MODEL]) == ("chat gpt-4o-mini", "gpt-4o-mini")
    assert (span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
            ) == billed
    assert usage.total()["input_tokens"] == billed[0]


def _stream_request(lm_server, unique):
    return _request(lm_server, unique, stream=True, stream_options={"include_usage": True})


def _text(chunks):
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def test_an_async_stream_after_a_failed_model_is_a_failed_span_then_the_streams(litellm_spans, lm_server, unique,
                                                                                tree):
    """The failed model's span ends at once; the fallback's stream span when the app has read the stream, with the
    bill of its usage chunk."""
    async def read():
        with litellm_spans.tracer.start_as_current_span("app.handler"):
            stream = await litellm.acompletion(**_stream_request(lm_server, unique))
            assert [(span.name, span.status.status_code.name) for span in litellm_spans()] == [("chat gpt-4o",
                                                                                               "ERROR")]
            return _text([chunk async for chunk in stream])

    with _failing(lm_server, "gpt-4o") as before, track() as usage:
        text = asyncio.run(read())

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed, billed[1]) == (1, 1, count_tokens(text))
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])]
    streamed = spans[1]
    assert (streamed.status.status_code.name, streamed.end_time <= spans[2].end_time) == ("UNSET", True)
    assert semconv.USAGE_ESTIMATED not in streamed.attributes
    assert_billed_once(streamed, usage, billed)


def _stream_error(caller, request):
    """Read the stream of a sync `completion`; the error LiteLLM raises."""
    with pytest.raises(Exception) as raised:
        _text(_call(caller, request))
    return raised.value


@pytest.mark.parametrize("caller", ["sync", "sync-in-event-loop"])
def test_a_sync_stream_with_fallbacks_fails_in_litellm_itself_and_its_span_says_so(litellm_spans, lm_server, unique,
                                                                                  caller):
    """LiteLLM 1.109-1.110 hands the sync caller the stream `acompletion` made in the fallbacks' event loop: reading
    it fails (`'AsyncStream' object is not an iterator`), untraced too. The server answered the fallback's request,
    but nobody reads its answer: that request's span ends with the error the app gets, no tokens."""
    request = _stream_request(lm_server, unique)
    with _failing(lm_server, "gpt-4o"), suppress_instrumentation():
        untraced = _stream_error(caller, request)
    with _failing(lm_server, "gpt-4o") as before:
        error = _stream_error(caller, request)

    assert server_since(lm_server, before)[:2] == (1, 1)
    assert (type(error), str(error)) == (type(untraced), str(untraced))
    assert type(error).__name__ == "MidStreamFallbackError"
    spans = litellm_spans()
    assert [(span.name, span.status.status_code.name, span.attributes[semconv.ERROR_TYPE]) for span in spans] == [
        ("chat gpt-4o", "ERROR", "NotFoundError"), ("chat gpt-4o-mini", "ERROR", "MidStreamFallbackError")]
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in spans[1].attributes


@pytest.mark.parametrize("entry", ["batch_completion", "batch_completion_models"])
def test_each_request_of_a_batch_call_is_a_span_under_the_callers(litellm_spans, lm_server, unique, tree, entry):
    """`batch_completion` (one request per message list) and `batch_completion_models` (the request to every model, the
    first answer returned) send their requests on the thread pool of `litellm.batch_completion.main`: each request a
    span, each under the caller's span."""
    ask = {"api_base": lm_server.base_url, "api_key": "sk-anything"}
    questions = [[{"role": "user", "content": f"What is the capital of {country}? {unique}"}]
                 for country in ("France", "Spain")]
    before = server_counts(lm_server)
    with track() as usage, litellm_spans.tracer.start_as_current_span("app.handler"):
        if entry == "batch_completion":
            litellm.batch_completion(model="openai/gpt-4o-mini", messages=questions, **ask)
        else:
            litellm.batch_completion_models(models=["openai/gpt-4o-mini", "openai/gpt-4o"], messages=questions[0],
                                            **ask)

    answered, failed, billed = server_since(lm_server, before)
    assert (answered, failed) == (2, 0)
    spans = litellm_spans()
    (handler, requests), = tree(spans)
    models = ["gpt-4o-mini", "gpt-4o-mini"] if entry == "batch_completion" else ["gpt-4o", "gpt-4o-mini"]
    assert (handler, sorted(requests)) == ("app.handler", [(f"chat {model}", []) for model in models])
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (2, *billed)
