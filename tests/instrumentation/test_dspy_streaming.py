"""`dspy.streamify`: a streamed LM call is one span with the tokens the provider billed, or, when DSPy asked for no
usage chunk (its LiteLLM path without `track_usage`), LiteLLM's count marked `lmscope.usage.estimated=true`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import dspy
import pytest
from dspy_release import engine_options

from lmscope import semconv
from lmscope.telemetry._usage import track

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # anyio's dependency there
    from exceptiongroup import BaseExceptionGroup

# Long enough that the second question shares prompt-cache blocks with the first on the stand-in server.
QUESTION = "Explain, in the words of a patient teacher, why the sky looks blue on a clear afternoon. "


@pytest.fixture
def bill(lm_server: Any) -> Any:
    """The usage the stand-in server billed for each chat request, in order."""
    billed: list[dict[str, Any]] = []
    complete = lm_server.complete

    def billing(body: Any) -> Any:
        answer = complete(body)
        billed.append(answer.usage())
        return answer

    lm_server.complete = billing
    yield billed
    del lm_server.complete


async def _consume(program: Any, question: str) -> str:
    answer = ""
    async for value in program(question=question):
        if isinstance(value, dspy.Prediction):
            answer = value.answer
    return answer


def _stream_twice(lm: Any, unique: str) -> list[str]:
    program = dspy.streamify(dspy.Predict("question -> answer"))
    with dspy.context(lm=lm):
        return [asyncio.run(_consume(program, f"{QUESTION}{unique} {suffix}")) for suffix in ("first", "second")]


def _lm_spans(finished: Any) -> list[Any]:
    return sorted((s for s in finished if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)


@pytest.mark.parametrize("track_usage", [False, True])
def test_a_streamed_call_has_the_billed_tokens_or_says_they_are_estimated(spans: Any, lm_server: Any, bill: Any,
                                                                         engine: str, unique: str,
                                                                         track_usage: bool) -> None:
    lm_server.reset_prefix_cache()
    dspy.configure(track_usage=track_usage)
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x", cache=False,
                 **engine_options(engine))
    answers = _stream_twice(lm, unique)

    assert all(answers)
    first, second = _lm_spans(spans())
    assert [b["prompt_tokens_details"]["cached_tokens"] > 0 for b in bill] == [False, True]  # the premise
    estimated = engine == "litellm" and not track_usage  # DSPy's LiteLLM path asks for usage only to track it
    for span, billed in zip((first, second), bill):
        attributes = span.attributes
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == billed["prompt_tokens"]
        assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == billed["completion_tokens"]
        if estimated:  # LiteLLM counted the same tokens, but cannot know what the provider's cache served
            assert attributes[semconv.USAGE_ESTIMATED] is True
            assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
        else:
            assert semconv.USAGE_ESTIMATED not in attributes
            assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == \
                billed["prompt_tokens_details"]["cached_tokens"]


def test_a_streamed_cache_hit_and_a_responses_call_are_not_estimated(spans: Any, lm_server: Any, bill: Any,
                                                                      unique: str) -> None:
    """Under `dspy.streamify` with `track_usage` off, on DSPy's LiteLLM path: a cache hit billed nothing (nothing to
    estimate), and a `model_type="responses"` call is not streamed (DSPy streams chat calls only), so it has the
    provider's usage."""
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x", **engine_options("litellm"))
    _stream_twice(lm, unique)
    with dspy.context(lm=lm):  # the first question again: a hit
        asyncio.run(_consume(dspy.streamify(dspy.Predict("question -> answer")), f"{QUESTION}{unique} first"))
    *_, hit = _lm_spans(spans())
    assert hit.attributes[semconv.CACHE_HIT] is True and semconv.USAGE_ESTIMATED not in hit.attributes
    responses = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x", cache=False,
                        model_type="responses", **engine_options("litellm"))
    with dspy.context(lm=responses):
        asyncio.run(_consume(dspy.streamify(dspy.Predict("question -> answer")), f"{QUESTION}{unique} third"))
    *_, call = _lm_spans(spans())
    assert semconv.USAGE_ESTIMATED not in call.attributes and call.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


def test_a_stream_the_program_stops_reading_is_one_ended_span_that_says_so(spans: Any, lm_server: Any, engine: str,
                                                                          unique: str) -> None:
    """An `async for` over `dspy.streamify(...)` left at the first answer chunk, the stream then closed: DSPy cancels
    the call. Its one LM span ends ERROR with the cancellation and `lmscope.stream.abandoned=true`, as a LiteLLM stream
    closed early says; no tokens (DSPy never saw the usage), so `track()` counts no call.

    An async program (`is_async_program=True`): a sync one, run in a worker thread, leaves that thread waiting on the
    closed event loop now and then in DSPy 3.4, and the process then never exits (lmscope or not). lmscope marks its
    call the same way (the cancellation reaches it as `LMUnexpectedError` from the cancelled send)."""
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x", cache=False,
                 **engine_options(engine))
    program = dspy.streamify(dspy.Predict("question -> answer"), is_async_program=True,
                             stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])

    async def first_chunk() -> Any:
        stream = program(question=f"{QUESTION}{unique}")
        async for value in stream:
            if isinstance(value, dspy.streaming.StreamResponse):
                break
        try:
            await stream.aclose()
        except BaseExceptionGroup as group:  # DSPy 3.0 to 3.3: their task group re-raises the close's GeneratorExit
            if group.subgroup(GeneratorExit) is None:
                raise
        return value

    before = lm_server.requests
    with dspy.context(lm=lm), track() as usage:
        chunk = asyncio.run(first_chunk())

    assert isinstance(chunk, dspy.streaming.StreamResponse) and chunk.chunk  # the premise: it stopped midway
    assert lm_server.requests == before + 1
    (call,) = _lm_spans(spans())
    assert call.status.status_code.name == "ERROR"
    assert call.attributes[semconv.ERROR_TYPE] == "CancelledError"
    assert call.attributes[semconv.STREAM_ABANDONED] is True
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in call.attributes
    assert usage.by_model() == {}


def _leaf(error: BaseException) -> BaseException:
    """The error itself, or the first one in the exception group DSPy 3.0 to 3.3 raise it in (their task group)."""
    return _leaf(error.exceptions[0]) if isinstance(error, BaseExceptionGroup) else error


def test_a_failing_call_under_streamify_is_not_called_abandoned(spans: Any, lm_server: Any, engine: str,
                                                                unique: str) -> None:
    """An LM error under `dspy.streamify` is the call's own failure, not the program leaving its stream."""
    lm_server.failures["broken-model"] = (500, "The server had an error while processing your request.")
    try:
        lm = dspy.LM("openai/broken-model", api_base=lm_server.base_url, api_key="sk-x", cache=False, num_retries=0,
                     **engine_options(engine))
        with dspy.context(lm=lm), pytest.raises(Exception) as caught:  # each DSPy release and engine: its own type
            asyncio.run(_consume(dspy.streamify(dspy.Predict("question -> answer")), f"{QUESTION}{unique}"))
    finally:
        del lm_server.failures["broken-model"]
    assert "The server had an error" in str(_leaf(caught.value))
    # DSPy before 3.3 tries a failed call again with JSONAdapter: one span per try, each the call's own failure.
    calls = [s for s in spans() if s.name == "chat broken-model"]
    assert calls and all(call.status.status_code.name == "ERROR" for call in calls)
    assert all(semconv.STREAM_ABANDONED not in call.attributes for call in calls)
