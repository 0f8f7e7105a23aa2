"""A DSPy LM call whose first provider requests fail and are sent again (`dspy.LM(..., num_retries=N)`): still one
LM span, with the answer's tokens and cost, each failed request an `exception` event on it, and how many requests
the call made in `lmscope.lm.requests` (docs/dspy-internals.md §4). DSPy 3.4 sends a failed attempt again itself, on
either engine; DSPy 3.0-3.3 leave it to LiteLLM, whose OpenAI SDK sends it again (docs/litellm-internals.md §6)."""

from __future__ import annotations

import asyncio
import json

import dspy
import pytest
from dspy_release import HAS_ENGINES, needs_dspy

from lmscope._lm_server import count_prompt_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

OPENAI_KEY = "sk-proj-" + "Q1w2E3r4T5y6" * 3
OUTAGE = [(500, f"The upstream rejected key {OPENAI_KEY}; try again."), (429, "Rate limit reached; try again.")]
"""The two requests that fail before the third is answered: each retried by every layer that retries."""
FAILED_TYPES = ("LMServerError", "LMRateLimitError") if HAS_ENGINES else ("InternalServerError", "RateLimitError")
"""The errors of those requests: DSPy's own, which it retries (3.4); the OpenAI SDK's, which resends them (3.0-3.3)."""


def _ask(lm, question, is_async):
    if is_async:
        return asyncio.run(lm.acall(question))
    return lm(question)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_failed_requests_sent_again_are_events_on_the_one_lm_span(dspy_and_litellm, lm_server, make_lm, unique,
                                                                  is_async):
    lm = make_lm(num_retries=3)
    question = f"What is the capital of France? {unique}"
    lm_server.transient_failures["gpt-4o-mini"] = list(OUTAGE)
    before = (lm_server.requests, lm_server.failed_requests, lm_server.billed_chat_tokens)
    try:
        with track() as usage:
            outputs = _ask(lm, question, is_async)
    finally:
        lm_server.transient_failures.pop("gpt-4o-mini", None)
    answered, failed = lm_server.requests - before[0], lm_server.failed_requests - before[1]
    billed = tuple(now - then for now, then in zip(lm_server.billed_chat_tokens, before[2], strict=True))
    assert outputs and (answered, failed) == (1, 2)

    (span,) = dspy_and_litellm()  # no LiteLLM span: it stands down inside the DSPy LM span
    attributes = span.attributes
    assert attributes[semconv.LM_REQUESTS] == answered + failed == 3
    assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    assert billed[0] == count_prompt_tokens([{"role": "user", "content": question}])
    assert span.status.status_code.name == "UNSET" and semconv.ERROR_TYPE not in attributes
    assert [(event.name, event.attributes["exception.type"].rsplit(".", 1)[-1]) for event in span.events] == [
        ("exception", name) for name in FAILED_TYPES]
    messages = [event.attributes["exception.message"] for event in span.events]
    assert "The upstream rejected key [REDACTED]; try again." in messages[0] and "Rate limit reached" in messages[1]
    assert OPENAI_KEY not in json.dumps([dict(event.attributes) for event in span.events])
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (1, *billed)


@needs_dspy((3, 4), "its own retry loop (before, LiteLLM retries after the OpenAI SDK gives up: not counted yet)")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_call_whose_every_request_failed_counts_them_all(dspy_and_litellm, lm_server, make_lm, unique, is_async):
    """The last request's error is the call's (status ERROR, `error.type`, its exception event as for any failed
    call); the one before it, sent again, an event of its own. Nothing billed, nothing rolled up."""
    lm = make_lm(num_retries=1)
    lm_server.failures["gpt-4o-mini"] = OUTAGE[0]
    before = (lm_server.requests, lm_server.failed_requests)
    try:
        with track() as usage, pytest.raises(dspy.utils.exceptions.LMServerError):
            _ask(lm, f"What is the capital of France? {unique}", is_async)
    finally:
        del lm_server.failures["gpt-4o-mini"]
    assert (lm_server.requests - before[0], lm_server.failed_requests - before[1]) == (0, 2)

    (span,) = dspy_and_litellm()
    attributes = span.attributes
    assert attributes[semconv.LM_REQUESTS] == 2
    assert (span.status.status_code.name, attributes[semconv.ERROR_TYPE]) == ("ERROR", "LMServerError")
    assert [event.attributes["exception.type"].rsplit(".", 1)[-1] for event in span.events] == ["LMServerError"] * 2
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes
    assert usage.total()["calls"] == 0


def test_a_call_answered_at_once_says_nothing_of_requests(dspy_and_litellm, lm_server, make_lm, unique):
    """The attribute is there only when requests were sent again: a call answered at once makes the one request its
    answer came from (or none, from DSPy's cache), and costs nothing more."""
    lm = make_lm(num_retries=3)
    question = f"What is the capital of France? {unique}"
    lm(question)
    lm(question)  # from DSPy's cache

    called, hit = dspy_and_litellm()
    assert hit.attributes[semconv.CACHE_HIT] is True
    for span in (called, hit):
        assert semconv.LM_REQUESTS not in span.attributes and not span.events
