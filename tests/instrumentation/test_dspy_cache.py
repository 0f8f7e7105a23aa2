"""DSPy's response cache as first-class facts: hit or miss, memory or disk tier, what a hit saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import dspy
import pytest
from dspy_release import DEFAULT_ENGINE, ENGINES, engine_options

from lmscope.telemetry import _semconv as semconv


def lm_spans(finished):
    return sorted((s for s in finished if s.name.startswith("chat ")), key=lambda s: s.start_time)


def test_repeated_call_is_a_memory_hit_billing_nothing(spans, make_lm, unique):
    lm = make_lm()
    dspy.configure(lm=lm)
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of Japan? {unique}"
    first = predict(question=question)
    second = predict(question=question)

    assert second.answer == first.answer
    miss, hit = (dict(s.attributes) for s in lm_spans(spans()))
    assert miss[semconv.CACHE_HIT] is False
    assert semconv.CACHE_LAYER not in miss
    assert hit[semconv.CACHE_HIT] is True
    assert hit[semconv.CACHE_LAYER] == "memory"
    for key in (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
                semconv.LLM_TOKEN_COUNT_PROMPT, semconv.LLM_TOKEN_COUNT_COMPLETION, semconv.LLM_TOKEN_COUNT_TOTAL):
        assert hit[key] == 0, key
    assert hit[semconv.GEN_AI_USAGE_COST] == 0.0
    assert hit[semconv.LLM_COST_TOTAL] == 0.0
    assert hit[semconv.CACHE_SAVED_USD] == miss[semconv.GEN_AI_USAGE_COST]
    assert hit[semconv.CACHE_SAVED_TOKENS] == miss[semconv.GEN_AI_USAGE_INPUT_TOKENS] + \
        miss[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    predict_span = [s for s in spans() if s.name == "predict"][1]
    assert predict_span.attributes[semconv.CACHE_HITS] == 1
    assert predict_span.attributes[semconv.COST_TOTAL_USD] == 0.0
    assert predict_span.attributes[semconv.CACHE_SAVED_TOTAL_USD] == miss[semconv.GEN_AI_USAGE_COST]


def test_a_hit_of_several_generations_saved_what_all_of_them_cost(spans, make_lm, lm_server, unique):
    """`n=3`: DSPy's native engine sends one request per generation and caches the three responses as one record;
    a hit saved the tokens of all of them, as the miss billed (and the stand-in server counted)."""
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer", n=3)
    question = f"What is the capital of Japan? {unique}"
    billed_before = lm_server.billed_chat_tokens
    predict(question=question)
    billed_after = lm_server.billed_chat_tokens
    predict(question=question)

    miss, hit = (dict(s.attributes) for s in lm_spans(spans()))
    billed = billed_after[0] - billed_before[0] + billed_after[1] - billed_before[1]
    assert miss[semconv.GEN_AI_USAGE_INPUT_TOKENS] + miss[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == billed
    assert hit[semconv.CACHE_HIT] is True
    assert hit[semconv.CACHE_SAVED_TOKENS] == billed
    assert hit[semconv.CACHE_SAVED_USD] == miss[semconv.GEN_AI_USAGE_COST]


def test_a_disk_hit_with_the_memory_tier_off_says_what_it_saved(spans, make_lm, unique, tmp_path, monkeypatch):
    """`dspy.configure_cache(enable_memory_cache=False)`: every hit comes from disk, and is still a hit that saved the
    tokens and the cost of the call that stored it."""
    monkeypatch.setattr(dspy, "cache", dspy.cache)  # the session's cache is back afterwards
    dspy.configure_cache(enable_memory_cache=False, enable_disk_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of Chile? {unique}"
    predict(question=question)
    predict(question=question)

    miss, hit = (dict(s.attributes) for s in lm_spans(spans()))
    assert (hit[semconv.CACHE_HIT], hit[semconv.CACHE_LAYER]) == (True, "disk")
    assert hit[semconv.CACHE_SAVED_TOKENS] == miss[semconv.GEN_AI_USAGE_INPUT_TOKENS] + \
        miss[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert hit[semconv.CACHE_SAVED_USD] == miss[semconv.GEN_AI_USAGE_COST]


def test_cache_off_makes_no_cache_facts_up(spans, make_lm, unique):
    dspy.configure(lm=make_lm(cache=False))
    predict = dspy.Predict("question -> answer")
    predict(question=f"Q {unique}")
    predict(question=f"Q {unique}")
    first, second = (dict(s.attributes) for s in lm_spans(spans()))
    assert first[semconv.CACHE_HIT] is False and second[semconv.CACHE_HIT] is False
    assert second[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


_CHILD = textwrap.dedent("""
    import json, sys
    import dspy
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from lmscope.instrumentation.dspy import DSPyInstrumentor

    exporter = InMemorySpanExporter(); provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    DSPyInstrumentor().instrument(provider.get_tracer("t"), capture_content=False)
    base_url, options, question = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=base_url, api_key="sk-x", **options))
    dspy.Predict("question -> answer")(question=question)
    span = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat "))
    print(json.dumps({k: v for k, v in span.attributes.items() if k.startswith(("lmscope.cache", "gen_ai.usage"))}))
""")


def _run_child(tmp_path, lm_server, engine, question):
    env = {**os.environ, "DSPY_CACHEDIR": str(tmp_path / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", _CHILD, lm_server.base_url, json.dumps(engine_options(engine)), question], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# litellm: each of the two child processes imports LiteLLM (about 10 s on a busy 2-core machine).
@pytest.mark.parametrize("engine", [DEFAULT_ENGINE, *(pytest.param(e, marks=pytest.mark.slow) for e in ENGINES[1:])])
def test_new_process_on_same_cache_dir_hits_disk(tmp_path, lm_server, engine, unique):
    question = f"Which river flows through Paris? {unique}"
    first = _run_child(tmp_path, lm_server, engine, question)
    requests_before = lm_server.requests
    second = _run_child(tmp_path, lm_server, engine, question)

    assert lm_server.requests == requests_before  # the second process never reached the LM
    assert first["lmscope.cache.hit"] is False and first["gen_ai.usage.input_tokens"] > 0
    assert second["lmscope.cache.hit"] is True
    assert second["lmscope.cache.layer"] == "disk"
    assert second["gen_ai.usage.input_tokens"] == 0 and second["gen_ai.usage.cost"] == 0.0
    assert second["lmscope.cache.saved_usd"] == first["gen_ai.usage.cost"]
    assert second["lmscope.cache.saved_tokens"] == first["gen_ai.usage.input_tokens"] + \
        first["gen_ai.usage.output_tokens"]
