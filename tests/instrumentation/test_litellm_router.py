"""`litellm.Router` calls: one `router {model group}` span over the deployment attempts, fallbacks and retries
included, each attempt an LM span with its own model, status and error; roll-ups, `track()` and cost equal to the
stand-in server's bill and LiteLLM's price, counted once."""

from __future__ import annotations

import asyncio
import os
import socket
import traceback

import dspy
import litellm
import pytest
from litellm_span import acollected, collected

import lmscope
from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_file import records_from_spans
from lmscope.telemetry._tree import is_lm_call
from lmscope.telemetry._usage import track

SERVED = "openai/gpt-4o-mini"
EMBEDDER = "openai/text-embedding-3-small"
BROKEN = "broken-deployment"
ROUTER_KEYS = (semconv.SPAN_KIND, semconv.ROUTER_MODEL_GROUP, semconv.ROUTER_ENDPOINT, semconv.ROUTER_ATTEMPTS,
               semconv.ROUTER_MODEL, semconv.LM_CALLS, semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS,
               semconv.USAGE_CACHED_TOKENS, semconv.CACHE_HITS, semconv.COST_TOTAL_USD)


def _dead_port():
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broken(lm_server):
    """The stand-in server answers every request for the model `BROKEN` with a 500."""
    lm_server.failures[BROKEN] = (500, "The server had an error while processing your request.")
    yield
    del lm_server.failures[BROKEN]


def _router(lm_server, main, **settings):
    """A Router whose group "main" is the deployment `main` (litellm_params), falling back to "backup" (SERVED)."""
    served = {"model": SERVED, "api_base": lm_server.base_url, "api_key": "sk-anything"}
    return litellm.Router(model_list=[
        {"model_name": "main", "litellm_params": main},
        {"model_name": "backup", "litellm_params": served},
        {"model_name": "embedder", "litellm_params": {**served, "model": EMBEDDER}}],
        fallbacks=[{"main": ["backup"]}], **settings)


def _unreachable():
    return {"model": "openai/gpt-4o", "api_base": f"http://127.0.0.1:{_dead_port()}/v1", "api_key": "sk-anything"}


def _erroring(lm_server):
    return {"model": f"openai/{BROKEN}", "api_base": lm_server.base_url, "api_key": "sk-anything"}


def _price(model, prompt, completion=0):
    prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=prompt,
                                                          completion_tokens=completion)
    return prompt_cost + completion_cost


def _messages(unique):
    return [{"role": "user", "content": f"What is the capital of France? {unique}"}]


def _router_attributes(span):
    return {key: span.attributes[key] for key in ROUTER_KEYS if key in span.attributes}


def _bill(messages, text, attempts, endpoint, group="main"):
    """The router span's attributes for a chat call the server billed for `messages` -> `text`."""
    prompt, completion = count_prompt_tokens(messages), count_tokens(text)
    return {semconv.SPAN_KIND: "CHAIN", semconv.ROUTER_MODEL_GROUP: group, semconv.ROUTER_ENDPOINT: endpoint,
            semconv.ROUTER_ATTEMPTS: attempts, semconv.ROUTER_MODEL: "gpt-4o-mini", semconv.LM_CALLS: 1,
            semconv.USAGE_INPUT_TOKENS: prompt, semconv.USAGE_OUTPUT_TOKENS: completion,
            semconv.USAGE_CACHED_TOKENS: 0, semconv.CACHE_HITS: 0,
            semconv.COST_TOTAL_USD: pytest.approx(_price("gpt-4o-mini", prompt, completion), rel=1e-9)}


def _nothing_answered(endpoint):
    """The router span's attributes for a call of the group "main" whose one attempt failed."""
    return {semconv.SPAN_KIND: "CHAIN", semconv.ROUTER_MODEL_GROUP: "main", semconv.ROUTER_ENDPOINT: endpoint,
            semconv.ROUTER_ATTEMPTS: 1, semconv.LM_CALLS: 0, semconv.USAGE_INPUT_TOKENS: 0,
            semconv.USAGE_OUTPUT_TOKENS: 0, semconv.USAGE_CACHED_TOKENS: 0, semconv.CACHE_HITS: 0}


def _status(span):
    return span.status.status_code.name


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_fallback_is_a_router_span_over_both_attempts_under_the_apps_span(litellm_spans, lm_server, unique, tree,
                                                                           endpoint):
    router = _router(lm_server, _unreachable(), num_retries=0)
    messages = _messages(unique)
    before = lm_server.requests

    def call():
        with litellm_spans.tracer.start_as_current_span("app.handler"):
            if endpoint == "completion":
                return router.completion(model="main", messages=messages)
            return asyncio.run(router.acompletion(model="main", messages=messages))

    with track() as usage:
        answer = call()

    assert lm_server.requests == before + 1
    spans = litellm_spans()
    assert tree(spans) == [("app.handler", [("router main", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])])]
    failed, served, router_span, _handler = spans
    assert [span.attributes[semconv.PHASE] for span in (failed, served, router_span)] == ["serve"] * 3
    # LiteLLM reports the refused connection as an InternalServerError ("Connection error.")
    assert (_status(failed), failed.attributes[semconv.ERROR_TYPE]) == ("ERROR", "InternalServerError")
    assert "Connection error" in failed.status.description
    assert failed.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert (_status(served), served.attributes[semconv.GEN_AI_REQUEST_MODEL]) == ("UNSET", "gpt-4o-mini")
    assert (_status(router_span), router_span.kind.name) == ("UNSET", "INTERNAL")  # a fallback answered: OK
    assert semconv.ERROR_TYPE not in router_span.attributes
    text = answer.choices[0].message.content
    assert _router_attributes(router_span) == _bill(messages, text, 2, endpoint)
    assert answer.usage.prompt_tokens == served.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
    assert served.attributes[semconv.GEN_AI_USAGE_COST] == router_span.attributes[semconv.COST_TOTAL_USD]
    # Counted once: reports count the answered attempt's LM span (the failed one billed nothing), never the router
    # span, which carries only lmscope.* roll-ups; track() counts the same one call.
    assert [span.name for span in spans if is_lm_call(span.attributes)] == ["chat gpt-4o-mini"]
    assert {key: usage.total()[key] for key in ("calls", "input_tokens", "output_tokens")} == {
        "calls": 1, "input_tokens": count_prompt_tokens(messages), "output_tokens": count_tokens(text)}
    assert usage.total()["cost_usd"] == pytest.approx(router_span.attributes[semconv.COST_TOTAL_USD], rel=1e-12)
    report = summarize(records_from_spans(spans)).total  # what `lmscope report` prints as the total
    assert (report.calls, report.input_tokens, report.output_tokens) == (
        1, count_prompt_tokens(messages), count_tokens(text))
    assert report.cost_usd == pytest.approx(router_span.attributes[semconv.COST_TOTAL_USD], rel=1e-12)


def test_retries_then_a_fallback_are_attempts_in_order(litellm_spans, lm_server, unique, tree, broken):
    router = _router(lm_server, _erroring(lm_server), num_retries=1, retry_after=0)
    messages = _messages(unique)
    answer = router.completion(model="main", messages=messages)

    spans = litellm_spans()
    assert tree(spans) == [("router main", [(f"chat {BROKEN}", []), (f"chat {BROKEN}", []), ("chat gpt-4o-mini", [])])]
    *failures, served, router_span = spans
    assert [(_status(span), span.attributes[semconv.ERROR_TYPE]) for span in failures] == [
        ("ERROR", "InternalServerError")] * 2
    assert _status(served) == _status(router_span) == "UNSET"
    assert _router_attributes(router_span) == _bill(messages, answer.choices[0].message.content, 3, "completion")


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_router_call_that_fails_is_an_error_span_and_the_app_gets_litellms_error(litellm_spans, lm_server,
                                                                                   unique, tree, broken, endpoint):
    router = litellm.Router(model_list=[{"model_name": "main", "litellm_params": _erroring(lm_server)}],
                            num_retries=0)
    messages = _messages(unique)
    with pytest.raises(litellm.InternalServerError) as raised:
        if endpoint == "completion":
            router.completion(model="main", messages=messages)
        else:
            asyncio.run(router.acompletion(model="main", messages=messages))

    spans = litellm_spans()
    assert tree(spans) == [("router main", [(f"chat {BROKEN}", [])])]
    attempt, router_span = spans
    assert _status(attempt) == _status(router_span) == "ERROR"
    assert router_span.attributes[semconv.ERROR_TYPE] == type(raised.value).__name__ == "InternalServerError"
    files = [frame.filename for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert not [name for name in files if "lmscope" in name]  # the traceback the app would see untraced
    recorded = router_span.events[0].attributes["exception.stacktrace"]
    assert f'"{os.path.dirname(lmscope.__file__)}{os.sep}' not in recorded  # nor on the span
    assert _router_attributes(router_span) == _nothing_answered(endpoint)  # no model, no $0 total


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_stream_through_the_router_keeps_its_span_open_until_the_stream_ends(litellm_spans, lm_server, unique,
                                                                               tree, endpoint):
    router = _router(lm_server, _unreachable(), num_retries=0)
    messages = _messages(unique)
    request = {"model": "main", "messages": messages, "stream": True, "stream_options": {"include_usage": True}}

    async def read_async():
        stream = await router.acompletion(**request)
        assert [span.name for span in litellm_spans()] == ["chat gpt-4o"]  # the answer is still streaming
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    if endpoint == "completion":
        stream = router.completion(**request)
        assert isinstance(stream, litellm.CustomStreamWrapper)
        assert [span.name for span in litellm_spans()] == ["chat gpt-4o"]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    else:
        text = asyncio.run(read_async())

    spans = litellm_spans()
    assert tree(spans) == [("router main", [("chat gpt-4o", []), ("chat gpt-4o-mini", [])])]
    _failed, served, router_span = spans
    assert served.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == count_tokens(text)
    assert semconv.USAGE_ESTIMATED not in served.attributes  # the provider's usage chunk: billed, not estimated
    assert router_span.end_time >= served.end_time
    assert _router_attributes(router_span) == _bill(messages, text, 2, endpoint)


@pytest.mark.parametrize("endpoint", ["embedding", "aembedding"])
def test_router_embeddings_are_a_router_span_over_an_embeddings_span(litellm_spans, lm_server, tree, endpoint):
    router = _router(lm_server, _unreachable())
    texts = ["Paris", "Hamlet is a play"]
    before = (lm_server.embedding_requests, lm_server.embedding_tokens)
    with track() as usage:
        if endpoint == "embedding":
            response = router.embedding(model="embedder", input=texts)
        else:
            response = asyncio.run(router.aembedding(model="embedder", input=texts))

    billed = lm_server.embedding_tokens - before[1]
    assert lm_server.embedding_requests == before[0] + 1 and response.usage.prompt_tokens == billed
    spans = litellm_spans()
    assert tree(spans) == [("router embedder", [("embeddings text-embedding-3-small", [])])]
    attempt, router_span = spans
    assert attempt.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == billed
    price = pytest.approx(_price("text-embedding-3-small", billed), rel=1e-9)
    assert _router_attributes(router_span) == {
        semconv.SPAN_KIND: "CHAIN", semconv.ROUTER_MODEL_GROUP: "embedder", semconv.ROUTER_ENDPOINT: endpoint,
        semconv.ROUTER_ATTEMPTS: 1, semconv.ROUTER_MODEL: "text-embedding-3-small", semconv.LM_CALLS: 1,
        semconv.USAGE_INPUT_TOKENS: billed, semconv.USAGE_OUTPUT_TOKENS: 0, semconv.USAGE_CACHED_TOKENS: 0,
        semconv.CACHE_HITS: 0, semconv.COST_TOTAL_USD: price}
    assert (usage.total()["calls"], usage.total()["input_tokens"], usage.total()["cost_usd"]) == (1, billed, price)


class _Answerer(dspy.Module):
    def __init__(self, router):
        super().__init__()
        self.router = router

    def forward(self, messages):
        return dspy.Prediction(answer=self.router.completion(model="main", messages=messages))


def test_inside_a_dspy_module_the_router_call_rolls_up_once(litellm_spans, spans, lm_server, unique):
    router = _router(lm_server, _unreachable(), num_retries=0)
    messages = _messages(unique)
    answer = _Answerer(router)(messages=messages).answer

    (module,) = spans()
    failed, served, router_span = litellm_spans()
    assert router_span.parent.span_id == module.context.span_id
    assert failed.parent.span_id == served.parent.span_id == router_span.context.span_id
    bill = _bill(messages, answer.choices[0].message.content, 2, "completion")
    rollups = (semconv.LM_CALLS, semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS, semconv.COST_TOTAL_USD)
    assert {key: module.attributes[key] for key in rollups} == {key: bill[key] for key in rollups}


_DROPPED = ("ERROR", "stream dropped before its end", True)
_CLOSED = ("UNSET", None, True)


def _unfinished(span):
    """What a stream's span says of a stream that ended early: status, its description, `lmscope.stream.abandoned`."""
    return _status(span), span.status.description, span.attributes.get(semconv.STREAM_ABANDONED)


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_router_stream_closed_early_ends_the_router_span(litellm_spans, lm_server, unique, tree, endpoint):
    router = _router(lm_server, _unreachable(), num_retries=0)
    request = {"model": "backup", "messages": _messages(unique), "stream": True}

    async def close_async():
        stream = await router.acompletion(**request)
        await stream.__anext__()
        assert litellm_spans() == ()
        await stream.aclose()

    if endpoint == "completion":
        stream = router.completion(**request)
        next(stream)
        assert litellm_spans() == ()
        stream.close()
    else:
        asyncio.run(close_async())

    spans = litellm_spans()
    assert tree(spans) == [("router backup", [("chat gpt-4o-mini", [])])]
    attempt, router_span = spans
    assert _unfinished(attempt) == _unfinished(router_span) == _CLOSED  # as a plain stream the program closed
    assert router_span.attributes[semconv.ROUTER_ATTEMPTS] == 1
    assert router_span.attributes[semconv.LM_CALLS] == 1  # what arrived, counted (estimated) as for any stream


def _plain_stream(lm_server, unique):
    """`litellm.completion(stream=True)` (with `acompletion=True`: its coroutine) on the router's "backup" model."""
    return {"model": SERVED, "messages": _messages(unique), "stream": True, "api_base": lm_server.base_url,
            "api_key": "sk-anything"}


def _assert_both_dropped(spans, tree):
    """`spans`: a Router stream's and a plain stream's, both dropped after their first chunk. The router span and its
    attempt's span say what the plain stream's span says."""
    assert tree(spans) == [("router backup", [("chat gpt-4o-mini", [])]), ("chat gpt-4o-mini", [])]
    plain = next(span for span in spans if span.parent is None and span.name == "chat gpt-4o-mini")
    attempt = next(span for span in spans if span.parent is not None)
    router_span = next(span for span in spans if span.name == "router backup")
    assert _unfinished(attempt) == _unfinished(router_span) == _unfinished(plain) == _DROPPED
    assert semconv.ERROR_TYPE not in router_span.attributes  # nothing was raised, as for the plain stream
    assert (router_span.attributes[semconv.ROUTER_ATTEMPTS], router_span.attributes[semconv.LM_CALLS]) == (1, 1)


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_router_stream_dropped_unfinished_ends_its_spans_as_a_plain_dropped_stream(litellm_spans, lm_server,
                                                                                    unique, tree, endpoint):
    """The program reads a chunk of a Router stream and of a plain LiteLLM stream, and drops both: the router span and
    its attempt's span say what the plain stream's span says (the Router's own wrapper closing the attempt's stream
    when it is collected is not the program closing it)."""
    router = _router(lm_server, _unreachable(), num_retries=0)
    request = {"model": "backup", "messages": _messages(unique), "stream": True}

    async def drop_async():
        for stream in (await router.acompletion(**request), await litellm.acompletion(**_plain_stream(lm_server,
                                                                                                      unique))):
            await stream.__anext__()
        del stream
        return await acollected(litellm_spans, 3)

    if endpoint == "completion":
        for stream in (router.completion(**request), litellm.completion(**_plain_stream(lm_server, unique))):
            next(stream)
        del stream
        spans = collected(litellm_spans, 3)
    else:
        spans = asyncio.run(drop_async())

    _assert_both_dropped(spans, tree)


def test_an_async_router_stream_whose_task_is_cancelled_ends_its_spans_as_a_plain_one(litellm_spans, lm_server,
                                                                                     unique, tree):
    """Each stream is read by a task that is cancelled while it waits between chunks: the stream goes with the task,
    unfinished."""
    router = _router(lm_server, _unreachable(), num_retries=0)
    request = {"model": "backup", "messages": _messages(unique), "stream": True}

    async def read_until_cancelled(call, reading):
        async for _chunk in await call:
            reading.set()
            await asyncio.sleep(60)

    async def main():
        for call in (router.acompletion(**request), litellm.acompletion(**_plain_stream(lm_server, unique))):
            reading = asyncio.Event()
            task = asyncio.create_task(read_until_cancelled(call, reading))
            await reading.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return await acollected(litellm_spans, 3)

    spans = asyncio.run(main())
    _assert_both_dropped(spans, tree)


@pytest.mark.parametrize("endpoint", ["completion", "acompletion"])
def test_a_router_stream_that_fails_midway_makes_the_router_span_an_error(litellm_spans, lm_server, unique, tree,
                                                                         endpoint):
    """LiteLLM's mock stream fails once a chunk repeats (docs/litellm-internals.md §3), after the app got chunks: the
    Router returned, and the call fails as the app iterates. The error the app gets is the router span's."""
    repeating = {**_erroring(lm_server), "model": SERVED, "mock_response": "xyz" * 200}
    router = _router(lm_server, repeating, num_retries=0)
    request = {"model": "main", "messages": _messages(unique), "stream": True}

    async def read_async():
        return [chunk async for chunk in await router.acompletion(**request)]

    with pytest.raises(litellm.InternalServerError) as raised:
        if endpoint == "completion":
            list(router.completion(**request))
        else:
            asyncio.run(read_async())

    spans = litellm_spans()
    assert tree(spans) == [("router main", [("chat gpt-4o-mini", [])])]
    attempt, router_span = spans
    assert (_status(attempt), attempt.attributes[semconv.ERROR_TYPE]) == ("ERROR", "MidStreamFallbackError")
    assert (_status(router_span), router_span.attributes[semconv.ERROR_TYPE]) == ("ERROR", type(raised.value).__name__)
    assert _router_attributes(router_span) == _nothing_answered(endpoint)
    files = [frame.filename for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert not [name for name in files if "lmscope" in name]  # the traceback the app would see untraced
