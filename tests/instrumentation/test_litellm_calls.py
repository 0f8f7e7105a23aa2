"""A plain LiteLLM app: one span per provider call, tokens equal to the stand-in server's bill, LiteLLM's price,
streams that end however the program leaves them, and DSPy's `engine="litellm"` calls still one span."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import traceback
from typing import Any

import dspy
import litellm
import pytest
from dspy_release import engine_options
from litellm.exceptions import MidStreamFallbackError
from litellm_span import collected, pop_litellm_chat
from memory_spans import memory_provider
from opentelemetry.instrumentation.utils import suppress_instrumentation

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

MODEL = "openai/gpt-4o-mini"


def _ask(lm_server, unique, **kwargs):
    return dict(model=MODEL, messages=[{"role": "user", "content": f"What is the capital of France? {unique}"}],
                api_base=lm_server.base_url, api_key="sk-anything", **kwargs)


def _price(prompt, completion):
    prompt_cost, completion_cost = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=prompt,
                                                          completion_tokens=completion)
    return prompt_cost + completion_cost


def test_completion_is_one_span_with_the_servers_bill(litellm_spans, lm_server, unique):
    before = lm_server.requests
    request = _ask(lm_server, unique, temperature=0.3)
    response = litellm.completion(**request)

    assert lm_server.requests == before + 1
    (span,) = litellm_spans()
    attributes = dict(span.attributes)
    usage = response.usage
    assert usage.prompt_tokens == count_prompt_tokens(request["messages"])
    assert usage.completion_tokens == count_tokens(response.choices[0].message.content)
    assert (span.name, span.kind.name) == ("chat gpt-4o-mini", "CLIENT")
    pop_litellm_chat(attributes, response, (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
                     request["messages"], response.choices[0].message.content)
    assert attributes.pop(semconv.GEN_AI_REQUEST_TEMPERATURE) == 0.3
    assert json.loads(attributes.pop(semconv.LLM_INVOCATION_PARAMETERS)) == {"temperature": 0.3}
    assert attributes == {}


@pytest.mark.parametrize("stop", ["\n\n", ["\n\n", "END"]])
def test_request_parameters_are_in_both_conventions(litellm_spans, lm_server, unique, stop):
    """`seed`, the penalties and `stop` (one string or a list) have the GenAI convention's attributes, besides
    OpenInference's `llm.invocation_parameters`; the request the server gets is the app's."""
    parameters = {"seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.25, "stop": stop}
    lm_server.recorded_bodies = []
    try:
        litellm.completion(**_ask(lm_server, unique, **parameters))
        (sent,) = lm_server.received
    finally:
        lm_server.recorded_bodies = None

    (span,) = litellm_spans()
    attributes = span.attributes
    assert json.loads(attributes[semconv.LLM_INVOCATION_PARAMETERS]) == parameters
    assert (attributes[semconv.GEN_AI_REQUEST_SEED], attributes[semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY],
            attributes[semconv.GEN_AI_REQUEST_PRESENCE_PENALTY]) == (7, 0.5, 0.25)
    assert attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] == ((stop,) if isinstance(stop, str) else tuple(stop))
    assert {name: sent[name] for name in parameters} == parameters


def test_async_calls_nest_under_the_callers_span_and_track_counts_them(litellm_spans, lm_server, unique):
    tracer = litellm_spans.tracer

    async def main():
        with tracer.start_as_current_span("app.handler"):
            return await asyncio.gather(litellm.acompletion(**_ask(lm_server, unique + "a")),
                                        litellm.acompletion(**_ask(lm_server, unique + "b")))

    with track() as usage:
        responses = asyncio.run(main())

    *calls, handler = litellm_spans()
    assert [s.name for s in calls] == ["chat gpt-4o-mini"] * 2 and handler.name == "app.handler"
    assert {s.parent.span_id for s in calls} == {handler.context.span_id}
    totals = usage.total()
    assert totals["calls"] == 2
    assert totals["input_tokens"] == sum(r.usage.prompt_tokens for r in responses)
    assert totals["output_tokens"] == sum(r.usage.completion_tokens for r in responses)


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_stream_is_one_span_that_ends_with_the_stream(litellm_spans, lm_server, unique, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    request = _ask(lm_server, unique, stream=True, **extra)
    stream = litellm.completion(**request)
    assert type(stream).__name__ == "CustomStreamWrapper" and isinstance(stream, litellm.CustomStreamWrapper)
    assert litellm_spans() == ()  # open until the stream ends
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    (span,) = litellm_spans()
    attributes = span.attributes
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == count_prompt_tokens(request["messages"])
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == count_tokens(text)
    assert (semconv.USAGE_ESTIMATED in attributes) is not include_usage
    assert attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert [event.name for event in span.events] == ["first_token"]
    assert json.loads(attributes[semconv.OUTPUT_VALUE]) == [text]
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(
        _price(count_prompt_tokens(request["messages"]), count_tokens(text)), rel=1e-9)
    assert semconv.STREAM_ABANDONED not in attributes and span.status.status_code.name == "UNSET"


def _without_bill(chunks):
    """The chunks, the usage chunk's `cost` (LiteLLM's bill) taken off as it passes: a usage chunk LiteLLM did not
    price."""
    for chunk in chunks:
        usage = getattr(chunk, "usage", None)
        if getattr(usage, "cost", None) is not None:
            del usage.cost
        yield chunk


@pytest.mark.parametrize("bill_on_usage", [True, False], ids=["litellms-bill", "its-table"])
def test_a_stream_whose_prompt_was_partly_cached_costs_what_the_call_not_streamed_costs(litellm_spans, lm_server,
                                                                                        unique, bill_on_usage):
    """LiteLLM writes its bill on the usage chunk (`usage.cost`); without it, its table prices the usage chunk's
    cached tokens at their rate, as for a call not streamed."""
    long_prompt = f"{unique} Summarise: " + " ".join(f"word{i}" for i in range(200))
    request = {**_ask(lm_server, unique), "messages": [{"role": "user", "content": long_prompt}]}
    litellm.completion(**request)  # the server's prefix cache now holds the prompt
    not_streamed = litellm.completion(**request)
    stream = litellm.completion(**request, stream=True, stream_options={"include_usage": True})
    chunks = list(stream if bill_on_usage else _without_bill(stream))

    cached = chunks[-1].usage.prompt_tokens_details.cached_tokens
    assert cached == not_streamed.usage.prompt_tokens_details.cached_tokens > 0
    *_, not_streamed_span, streamed_span = litellm_spans()
    assert streamed_span.attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == cached
    cost = streamed_span.attributes[semconv.GEN_AI_USAGE_COST]
    assert cost == pytest.approx(litellm.completion_cost(not_streamed), rel=1e-9)
    assert cost == pytest.approx(not_streamed_span.attributes[semconv.GEN_AI_USAGE_COST], rel=1e-9)
    assert cost == pytest.approx(litellm.completion_cost(litellm.stream_chunk_builder(chunks)), rel=1e-9)


def test_an_async_stream_ends_its_span(litellm_spans, lm_server, unique):
    async def main():
        stream = await litellm.acompletion(**_ask(lm_server, unique, stream=True,
                                                  stream_options={"include_usage": True}))
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    text = asyncio.run(main())
    (span,) = litellm_spans()
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == count_tokens(text)


def test_a_stream_dropped_or_closed_early_ends_its_span(litellm_spans, lm_server, unique):
    dropped = litellm.completion(**_ask(lm_server, unique + "d", stream=True))
    next(dropped)
    del dropped
    collected(litellm_spans, 1)
    closed = litellm.completion(**_ask(lm_server, unique + "c", stream=True))
    next(closed)
    closed.close()

    dropped_span, closed_span = litellm_spans()
    for span in (dropped_span, closed_span):
        assert span.attributes[semconv.STREAM_ABANDONED] is True
        assert span.attributes[semconv.USAGE_ESTIMATED] is True
    assert dropped_span.status.status_code.name == "ERROR"
    assert closed_span.status.status_code.name == "UNSET"


def _streamed(request, is_async):
    """The chunks of a streamed call, read to its end."""
    if not is_async:
        return list(litellm.completion(**request))

    async def main():
        return [chunk async for chunk in await litellm.acompletion(**request)]

    return asyncio.run(main())


@pytest.mark.parametrize("max_tokens", [None, 5], ids=["stop", "length"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_stream_of_two_choices_records_each_ones_finish_reason(litellm_spans, lm_server, unique, is_async,
                                                                 max_tokens):
    """LiteLLM hands the program the first choice's finish only (pinned below: docs/litellm-internals.md §3); the
    span has every choice's, in choice order, as the same call not streamed has them."""
    request = _ask(lm_server, unique, n=2, **({"max_tokens": max_tokens} if max_tokens else {}))
    response = litellm.completion(**request)
    chunks = _streamed({**request, "stream": True, "stream_options": {"include_usage": True}}, is_async)

    reason = "length" if max_tokens else "stop"
    assert [choice.finish_reason for choice in response.choices] == [reason, reason]
    assert [(choice.index, choice.finish_reason) for chunk in chunks for choice in chunk.choices
            if choice.finish_reason] == [(0, reason)]
    not_streamed, streamed = (dict(span.attributes) for span in litellm_spans())
    text = response.choices[0].message.content
    completion = max_tokens or count_tokens(text)
    assert (streamed[semconv.GEN_AI_USAGE_INPUT_TOKENS], streamed[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        count_prompt_tokens(request["messages"]), 2 * completion)
    assert streamed[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (reason, reason)
    assert json.loads(streamed[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reason}] * 2
    for key in (semconv.GEN_AI_RESPONSE_FINISH_REASONS, semconv.GEN_AI_OUTPUT_MESSAGES, semconv.OUTPUT_VALUE):
        assert streamed[key] == not_streamed[key]


def test_embeddings_are_one_span_with_input_tokens(litellm_spans, lm_server):
    before = lm_server.embedding_tokens
    response = litellm.embedding(model="openai/text-embedding-3-small", input=["Paris", "Hamlet is a play"],
                                 api_base=lm_server.base_url, api_key="sk-anything")

    (span,) = litellm_spans()
    attributes = span.attributes
    assert span.name == "embeddings text-embedding-3-small"
    assert attributes[semconv.SPAN_KIND] == "EMBEDDING" and attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens == (
        lm_server.embedding_tokens - before)
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
    assert json.loads(attributes[semconv.INPUT_VALUE]) == ["Paris", "Hamlet is a play"]
    assert json.loads(attributes[semconv.OUTPUT_VALUE]) == {"embeddings": 2, "dimensions": 64}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_an_error_is_recorded_and_reaches_the_app_unchanged(litellm_spans, lm_server, unique, is_async):
    lm_server.failures["broken-model"] = (401, "Incorrect API key provided: sk-abc...")
    request = {**_ask(lm_server, unique), "model": "openai/broken-model", "num_retries": 0}
    try:
        with pytest.raises(litellm.AuthenticationError) as raised:
            if is_async:
                asyncio.run(litellm.acompletion(**request))
            else:
                litellm.completion(**request)
    finally:
        del lm_server.failures["broken-model"]
    (span,) = litellm_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == "AuthenticationError"
    # The span's traceback is the app's from LiteLLM's first frame down: no frame of lmscope's wrapper at its head.
    head = raised.value.__traceback__
    while not head.tb_frame.f_code.co_filename.startswith(os.path.dirname(litellm.__file__)):
        head = head.tb_next
    recorded = span.events[0].attributes["exception.stacktrace"]
    error = raised.value
    assert _frame_lines(recorded) == _frame_lines("".join(traceback.format_exception(type(error), error, head)))


def _frame_lines(stacktrace):
    return [line for line in stacktrace.splitlines() if line.startswith("  File ")]


def _read_failing_stream(request, is_async):
    """Read a stream LiteLLM fails partway (a mock stream whose chunk repeats, docs/litellm-internals.md §3); the
    frames of the error's traceback, as (file, function)."""
    async def read_async():
        return [chunk async for chunk in await litellm.acompletion(**request)]

    with pytest.raises(MidStreamFallbackError) as raised:
        if is_async:
            asyncio.run(read_async())
        else:
            list(litellm.completion(**request))
    return [(frame.filename, frame.name) for frame in traceback.extract_tb(raised.value.__traceback__)]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_stream_failing_partway_raises_the_traceback_of_an_untraced_call(litellm_spans, lm_server, unique,
                                                                           is_async):
    request = _ask(lm_server, unique, stream=True, mock_response="xyz" * 200)
    with suppress_instrumentation():  # the stream as LiteLLM returns it, untraced
        untraced = _read_failing_stream(request, is_async)
    traced = _read_failing_stream(request, is_async)

    assert traced == untraced
    (span,) = litellm_spans()
    assert (span.status.status_code.name, span.attributes[semconv.ERROR_TYPE]) == ("ERROR", "MidStreamFallbackError")


def test_dspy_on_the_litellm_engine_stays_one_span_per_call(litellm_spans, spans, lm_server, unique):
    lm = dspy.LM(MODEL, api_base=lm_server.base_url, api_key="sk-anything", **engine_options("litellm"), cache=False)
    before = lm_server.requests
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question=f"Capital of France? {unique}")
    assert lm_server.requests == before + 1
    assert litellm_spans() == ()  # DSPy's LM span is the one span of that call
    assert [s.name for s in spans() if s.name.startswith("chat")] == ["chat gpt-4o-mini"]


class _Searcher(dspy.Module):
    def __init__(self, embedder):
        super().__init__()
        self.embedder = embedder

    def forward(self, texts):
        return dspy.Prediction(vectors=self.embedder(texts))


def test_dspy_embedder_batches_are_embedding_spans_under_the_module(litellm_spans, spans, lm_server):
    """`dspy.Embedder` with a hosted model calls `litellm.embedding` once per batch: one span each, in the module."""
    embedder = dspy.Embedder("openai/text-embedding-3-small", batch_size=2, caching=False,
                             api_base=lm_server.base_url, api_key="sk-anything")
    before = (lm_server.embedding_requests, lm_server.embedding_tokens)
    _Searcher(embedder)(texts=["Paris", "Berlin", "Tokyo"])

    batches = litellm_spans()
    (module,) = spans()
    assert lm_server.embedding_requests - before[0] == len(batches) == 2
    assert {span.parent.span_id for span in batches} == {module.context.span_id}
    billed = lm_server.embedding_tokens - before[1]
    assert sum(span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for span in batches) == billed
    assert module.attributes[semconv.LM_CALLS] == 2 and module.attributes[semconv.USAGE_INPUT_TOKENS] == billed


def test_metrics_name_each_operation(lm_server, unique):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    reader = InMemoryMetricReader()
    provider, _exporter = memory_provider()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]),
                            capture_content=False)
    try:
        chat = litellm.completion(**_ask(lm_server, unique))
        vectors = litellm.embedding(model="openai/text-embedding-3-small", input=["Paris"],
                                    api_base=lm_server.base_url, api_key="sk-anything")
    finally:
        instrumentor.uninstrument()
    tokens = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == semconv.METRIC_TOKEN_USAGE:
                    for point in metric.data.data_points:
                        key = (point.attributes[semconv.GEN_AI_OPERATION_NAME],
                               point.attributes[semconv.GEN_AI_TOKEN_TYPE])
                        tokens[key] = tokens.get(key, 0) + point.sum
    assert tokens[("chat", "input")] == chat.usage.prompt_tokens
    assert tokens[("chat", "output")] == chat.usage.completion_tokens
    assert tokens[("embeddings", "input")] == vectors.usage.prompt_tokens
    assert ("embeddings", "output") not in tokens  # as on its span: no output tokens, rather than 0


def test_the_embeddings_retriever_lists_corpus_ids_and_its_query_embedding(litellm_spans, spans, lm_server):
    from dspy.retrievers import Embeddings

    corpus = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Tokyo is in Japan."]
    embedder = dspy.Embedder("openai/text-embedding-3-small", caching=False, api_base=lm_server.base_url,
                             api_key="sk-anything")
    retriever = Embeddings(corpus=corpus, embedder=embedder, k=2)
    corpus_batches = len(litellm_spans())  # the index is built at construction, outside any module
    result = retriever("What is the capital of France?")

    (span,) = spans()
    assert span.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    documents = [(span.attributes[f"{semconv.RETRIEVAL_DOCUMENTS}.{i}.{semconv.DOCUMENT_ID}"],
                  span.attributes[f"{semconv.RETRIEVAL_DOCUMENTS}.{i}.{semconv.DOCUMENT_CONTENT}"]) for i in range(2)]
    assert documents == [(str(index), corpus[index]) for index in result.indices]  # corpus ids, not ranks
    (query,) = litellm_spans()[corpus_batches:]
    assert query.name == "embeddings text-embedding-3-small"
    # DSPy embeds queries on a batching thread (`Unbatchify`): the caller's context goes with the query
    # (tests/instrumentation/test_dspy_embeddings_retriever.py).
    assert query.parent.span_id == span.context.span_id


@pytest.mark.parametrize("lmscope_first", [True, False], ids=["lmscope-first", "openinference-first"])
def test_next_to_openinference_litellm_each_call_is_counted_once(lm_server, unique, lmscope_first):
    """Whichever came first, OpenInference's span encloses lmscope's (lmscope goes beneath its patch): lmscope
    counts the call once (test_litellm_neighbours.py has the whole picture)."""
    from openinference.instrumentation.litellm import LiteLLMInstrumentor as OpenInferenceLiteLLM

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor
    from lmscope.telemetry._tree import is_lm_call

    provider, exporter = memory_provider()
    ours, theirs = LiteLLMInstrumentor(), OpenInferenceLiteLLM()
    original = litellm.completion
    first, second = ((ours, theirs) if lmscope_first else (theirs, ours))
    first.instrument(tracer=provider.get_tracer("test"), tracer_provider=provider, capture_content=False,
                     skip_dep_check=True)
    second.instrument(tracer=provider.get_tracer("test"), tracer_provider=provider, capture_content=False,
                      skip_dep_check=True)
    try:
        with track() as usage:
            response = litellm.completion(**_ask(lm_server, unique))
    finally:
        second.uninstrument()
        first.uninstrument()
    assert litellm.completion is original

    spans = exporter.get_finished_spans()
    counted = [span for span in spans if is_lm_call(span.attributes)]
    assert [span.name for span in counted] == ["chat gpt-4o-mini"]
    assert counted[0].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
    assert len(spans) == 2
    assert usage.total()["calls"] == 1


def _failing_call_frames(request, is_async, suppressed):
    """Make the failing call `request` (sync or async, inside `suppress_instrumentation()` or not); the error's type,
    message and traceback frames, as (file, function)."""
    call = (lambda: asyncio.run(litellm.acompletion(**request))) if is_async else (
        lambda: litellm.completion(**request))
    with pytest.raises(litellm.InternalServerError) as raised, (
            suppress_instrumentation() if suppressed else contextlib.nullcontext()):
        call()
    error = raised.value
    return type(error), str(error), [(frame.filename, frame.name) for frame in traceback.extract_tb(error.__traceback__)]


@pytest.mark.parametrize(("untraced_inside", "is_async"), [("suppress_instrumentation", False),
                                                          ("suppress_instrumentation", True), ("num_retries", False)],
                         ids=["suppressed-sync", "suppressed-async", "num_retries-sync"])
def test_an_untraced_call_through_the_wrapper_raises_the_traceback_of_a_call_without_lmscope(lm_server, unique,
                                                                                             untraced_inside,
                                                                                             is_async):
    """The wrapper runs a call untraced inside the app's `suppress_instrumentation()`, and inside another LiteLLM
    span: `completion(num_retries=1)` has the OpenAI SDK send the failed request again once, then retries through
    `litellm.completion_with_retries`, whose attempt runs in the caller's context (each request a span of its own; the
    async retry's attempt returns a coroutine, awaited outside the wrapper). Its error still reaches the program with
    no frame of lmscope's."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    suppressed = untraced_inside == "suppress_instrumentation"
    request = {**_ask(lm_server, unique), "model": "openai/broken-model",
               "num_retries": 0 if suppressed else 1}
    lm_server.failures["broken-model"] = (500, "The server had an error while processing your request.")
    provider, exporter = memory_provider()
    instrumentor = LiteLLMInstrumentor()
    try:
        without_lmscope = _failing_call_frames(request, is_async, suppressed)
        instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=False)
        failed = lm_server.failed_requests
        try:
            traced = _failing_call_frames(request, is_async, suppressed)
        finally:
            instrumentor.uninstrument()
    finally:
        del lm_server.failures["broken-model"]

    assert traced == without_lmscope
    spans = exporter.get_finished_spans()
    if suppressed:
        assert spans == ()
    else:  # three requests, three spans: the call's, the SDK's once more, then LiteLLM's retry
        assert lm_server.failed_requests - failed == 3
        assert [(span.name, span.status.status_code.name) for span in spans] == [("chat broken-model", "ERROR")] * 3


_PER_RESPONSE = (semconv.GEN_AI_RESPONSE_ID, semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("named", ["bare", "custom_llm_provider"])
def test_a_bare_model_names_provider_is_on_its_span_as_a_prefixed_ones(litellm_spans, lm_server, unique, stream,
                                                                       named):
    """`model="gpt-4o-mini"` (LiteLLM routes it to OpenAI) or with `custom_llm_provider="openai"`: the span is the one
    of `model="openai/gpt-4o-mini"`, provider included (`gen_ai.provider.name` is a required attribute)."""
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    prefixed = _ask(lm_server, unique, **extra)
    bare = {**prefixed, "model": "gpt-4o-mini"}
    if named == "custom_llm_provider":
        bare["custom_llm_provider"] = "openai"
    for request in (prefixed, bare):
        response = litellm.completion(**request)
        if stream:
            list(response)

    with_prefix, without = ({key: value for key, value in span.attributes.items() if key not in _PER_RESPONSE}
                            for span in litellm_spans())
    assert with_prefix[semconv.GEN_AI_PROVIDER_NAME] == with_prefix[semconv.LLM_PROVIDER] == "openai"
    assert without == with_prefix


@pytest.mark.parametrize("field", ["model", "id"])
def test_an_answer_field_of_another_type_is_left_out_not_printed(field):
    """An app's tests may hand LiteLLM's answer a `MagicMock` field: the span leaves it out, where it recorded its
    repr (`<MagicMock id=...>`) as the response model."""
    from unittest import mock

    from lmscope.instrumentation.litellm._results import call_from_response
    from lmscope.telemetry._lm_call import LMCall

    response = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                  mock_response="hello")
    setattr(response, field, mock.MagicMock())
    call = call_from_response(response, LMCall(model="gpt-4o-mini", provider="openai"))
    assert (call.response_model, call.response_id) == ((None, response.id) if field == "model"
                                                       else (response.model, None))


def _image_host(requests: list[str]) -> Any:
    """An image host on 127.0.0.1 that notes every GET: what a provider (or anyone) fetches of a prompt's image."""
    import http.server
    import threading

    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d4944415478da63f8"
                        "cfc0f01f0005000201a5f4c6b10000000049454e44ae426082")

    class Host(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: Any) -> None:
            pass

    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    return host


def test_a_streams_token_estimate_fetches_no_image_the_call_did_not(monkeypatch):
    """Without the provider's usage chunk lmscope counts a stream's tokens with LiteLLM's counter, which fetched each
    image URL of the prompt to measure it: a second request to a URL the program gave the provider, and the
    program's last read of the stream waited for it. Now only LiteLLM's own fetches are made, as without lmscope."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    monkeypatch.setattr(litellm, "user_url_validation", False)  # the host is on 127.0.0.1, which LiteLLM refuses
    requests: list[str] = []
    host = _image_host(requests)
    url = f"http://127.0.0.1:{host.server_port}/photo.png"
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": url, "detail": "high"}}]}]

    def stream_fetches() -> int:
        requests.clear()
        stream = litellm.completion(model="openai/gpt-4o-mini", messages=messages, stream=True, mock_response="A cat")
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "A cat"
        return len(requests)

    try:
        untraced = stream_fetches()
        provider, exporter = memory_provider()
        instrumentor = LiteLLMInstrumentor()
        instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True)
        try:
            assert stream_fetches() == untraced
        finally:
            instrumentor.uninstrument()
    finally:
        host.shutdown()
    [span] = exporter.get_finished_spans()
    assert span.attributes[semconv.USAGE_ESTIMATED] is True and span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


def test_a_stream_whose_prompt_holds_audio_ends_with_its_answer(litellm_spans):
    """LiteLLM's counter cannot count an `input_audio` part: the estimate raised at the stream's end, and the span
    ended without its answer, tokens or cost."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "Transcribe this."},
                                             {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=messages, stream=True, mock_response="Hello")
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "Hello"
    [span] = collected(litellm_spans, 1)
    assert span.attributes[semconv.OUTPUT_VALUE] == '["Hello"]'
    assert span.attributes[semconv.USAGE_ESTIMATED] is True
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    # The text beside the audio is counted (LiteLLM's counter refuses the whole message).
    text_only = litellm.token_counter(model="openai/gpt-4o-mini", messages=[
        {"role": "user", "content": "Transcribe this."}])
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == text_only
