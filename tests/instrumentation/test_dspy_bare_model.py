"""`dspy.LM("gpt-4o-mini")`: a model name without a provider prefix, which each DSPy engine routes itself (the native
one by lm15's router, LiteLLM's by its model table). Its LM spans name the provider as those of `openai/gpt-4o-mini`
do (`gen_ai.provider.name` is a required GenAI attribute), fresh or from DSPy's cache, and so do the metrics."""

from __future__ import annotations

import dspy
import pytest
from dspy_release import DSPY_VERSION

from lmscope.telemetry import _semconv as semconv

PROVIDER = {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.LLM_PROVIDER: "openai"}
PER_RESPONSE = (semconv.GEN_AI_RESPONSE_ID, semconv.SETTINGS_PREFIX + "lm.model")
"""What differs between the calls of two LMs asked the same: the response's id, and the LM's model string."""


def _lm_spans(finished):
    return sorted((span for span in finished if span.name.startswith("chat ")), key=lambda span: span.start_time)


def _fresh_then_cached(make_lm, lm_server, model, question, layer):
    """Ask `question` twice with `model`: from the stand-in server, then from DSPy's cache (`layer` tier)."""
    dspy.configure(lm=make_lm(model=model))
    predict = dspy.Predict("question -> answer")
    lm_server.reset_prefix_cache()  # both models' first calls bill the same tokens: no cached prompt tokens
    predict(question=question)
    if layer == "disk":
        dspy.cache.reset_memory_cache()
    predict(question=question)


@pytest.mark.parametrize("layer", ["memory", "disk"])
def test_a_bare_model_names_provider_is_on_its_spans_as_a_prefixed_ones(spans, lm_server, make_lm, unique, layer):
    question = f"What is the capital of France? {unique}"
    for model in ("openai/gpt-4o-mini", "gpt-4o-mini"):
        _fresh_then_cached(make_lm, lm_server, model, question, layer)

    prefixed_call, prefixed_hit, bare_call, bare_hit = (
        {key: value for key, value in span.attributes.items() if key not in PER_RESPONSE}
        for span in _lm_spans(spans()))
    assert (prefixed_hit[semconv.CACHE_HIT], prefixed_hit[semconv.CACHE_LAYER]) == (True, layer)
    assert {key: prefixed_call[key] for key in PROVIDER} == PROVIDER
    assert (bare_call, bare_hit) == (prefixed_call, prefixed_hit)


@pytest.mark.parametrize("where", ["lm", "call"])
def test_the_callers_custom_llm_provider_names_the_provider_of_a_call_that_got_no_answer(spans, lm_server, make_lm,
                                                                                        unique, where):
    """`custom_llm_provider` on the LM or in the call's config (LiteLLM's option: DSPy's native engine hands such a
    call to LiteLLM too) is on the span from its start: a failed call has no answer that could name it."""
    given = {"custom_llm_provider": "openai"}
    lm_server.failures["broken-model"] = (401, "Incorrect API key provided: sk-abc...")
    try:
        dspy.configure(lm=make_lm(model="broken-model", num_retries=0, **(given if where == "lm" else {})))
        with pytest.raises(Exception) as caught:
            dspy.Predict("question -> answer")(question=f"What is the capital of Japan? {unique}",
                                               **({"config": given} if where == "call" else {}))
    finally:
        del lm_server.failures["broken-model"]

    # One call; DSPy before 3.3 retries a failed ChatAdapter call once with JSONAdapter (3.3 stopped doing so for an
    # LM error): two there, each failed alike.
    failed = _lm_spans(spans())
    assert len(failed) == (1 if DSPY_VERSION >= (3, 3) else 2)
    for span in failed:
        assert (span.name, span.attributes[semconv.ERROR_TYPE]) == ("chat broken-model", type(caught.value).__name__)
        assert {key: span.attributes[key] for key in PROVIDER} == PROVIDER


def test_metrics_name_a_bare_models_provider(metered, metric_series, make_lm, lm_server, unique):
    _spans, reader = metered
    before = lm_server.billed_chat_tokens
    _fresh_then_cached(make_lm, lm_server, "gpt-4o-mini", f"What is the capital of Italy? {unique}", "memory")
    prompt, completion = (now - then for now, then in zip(lm_server.billed_chat_tokens, before, strict=True))

    def series(**extra):
        return frozenset({semconv.PHASE: semconv.PHASE_SERVE, semconv.GEN_AI_OPERATION_NAME: "chat",
                          semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                          semconv.MODULE_PATH: "predict", **extra}.items())

    got = metric_series(reader)
    assert got[semconv.METRIC_CACHE_REQUESTS] == {series(**{semconv.CACHE_RESULT: "miss"}): 1,
                                                  series(**{semconv.CACHE_RESULT: "hit",
                                                            semconv.CACHE_LAYER: "memory"}): 1}
    assert got[semconv.METRIC_TOKEN_USAGE] == {series(**{semconv.GEN_AI_TOKEN_TYPE: "input"}): (1, prompt),
                                               series(**{semconv.GEN_AI_TOKEN_TYPE: "output"}): (1, completion)}
