"""Metrics from real DSPy runs on both engines: exact points per LM call and module call, spec buckets,
low-cardinality attributes, and no double counting when LiteLLM's own instrumentation is on too."""

from __future__ import annotations

import time

import dspy
import pytest
from dspy_release import DSPY_VERSION, engine_options

from lmscope.telemetry import _semconv as semconv

# gpt-4o-mini in LiteLLM's bundled price map (LITELLM_LOCAL_MODEL_COST_MAP=True): USD per token.
INPUT_PRICE, CACHED_INPUT_PRICE, OUTPUT_PRICE = 0.15e-6, 0.075e-6, 0.6e-6

DURATION, TOKENS, COST = (semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE, semconv.METRIC_COST)
CACHED, REQUESTS = semconv.METRIC_CACHED_TOKENS, semconv.METRIC_CACHE_REQUESTS
SAVED_USD, SAVED_TOKENS, MODULE = (semconv.METRIC_CACHE_SAVED_USD, semconv.METRIC_CACHE_SAVED_TOKENS,
                                   semconv.METRIC_MODULE_DURATION)
ALLOWED_KEYS = {semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL,
                semconv.GEN_AI_TOKEN_TYPE, semconv.MODULE_PATH, semconv.CACHE_RESULT, semconv.CACHE_LAYER,
                semconv.ERROR_TYPE, semconv.PHASE}


def key(**attributes):
    """A series' attribute set; every point of these programs is recorded outside any compile or evaluation."""
    return frozenset({semconv.PHASE: semconv.PHASE_SERVE, **attributes}.items())


def lm_attributes(path, **extra):
    return key(**{semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                  semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.MODULE_PATH: path, **extra})


def lm_spans(finished):
    return sorted((s for s in finished if s.name.startswith("chat ")), key=lambda s: s.start_time)


def seconds(span):
    return (span.end_time - span.start_time) / 1e9


def test_fresh_call_then_cache_hit(metered, metric_series, make_lm, unique):
    spans, reader = metered
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of Japan? {unique}"
    predict(question=question)
    predict(question=question)

    miss, hit = lm_spans(spans())
    tokens_in = miss.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
    tokens_out = miss.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    cached = miss.attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]  # the stand-in's prefix cache
    cost = miss.attributes[semconv.GEN_AI_USAGE_COST]
    assert tokens_in > 0 and tokens_out > 0
    assert cost == pytest.approx((tokens_in - cached) * INPUT_PRICE + cached * CACHED_INPUT_PRICE
                                 + tokens_out * OUTPUT_PRICE, abs=1e-12)
    base = lm_attributes("predict")
    got = metric_series(reader)

    assert set(got) == {DURATION, TOKENS, COST, REQUESTS, SAVED_USD, SAVED_TOKENS, MODULE} | ({CACHED} if cached else set())
    # The provider call: one duration point (the hit adds none), its tokens by type, its cost.
    [(duration_key, (count, duration))] = got[DURATION].items()
    assert (duration_key, count) == (base, 1)
    assert 0 < duration <= seconds(miss)
    assert got[TOKENS] == {lm_attributes("predict", **{semconv.GEN_AI_TOKEN_TYPE: "input"}): (1, tokens_in),
                           lm_attributes("predict", **{semconv.GEN_AI_TOKEN_TYPE: "output"}): (1, tokens_out)}
    assert got.get(CACHED) == ({base: cached} if cached else None)  # no point for 0 prompt-cache tokens
    assert got[COST] == {base: cost}
    # The cache: one miss, one memory hit that saved the first call's price and tokens.
    hit_key = lm_attributes("predict", **{semconv.CACHE_RESULT: "hit", semconv.CACHE_LAYER: "memory"})
    assert got[REQUESTS] == {lm_attributes("predict", **{semconv.CACHE_RESULT: "miss"}): 1, hit_key: 1}
    assert got[SAVED_USD] == {hit_key: cost} == {hit_key: hit.attributes[semconv.CACHE_SAVED_USD]}
    assert got[SAVED_TOKENS] == {hit_key: tokens_in + tokens_out}
    assert {k: n for k, (n, _) in got[MODULE].items()} == {key(**{semconv.MODULE_PATH: "predict"}): 2}


def test_errors_are_counted_by_error_type(metered, metric_series, engine, unique):
    spans, reader = metered
    options = engine_options(engine)
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="sk-x",
                              num_retries=0, **options))
    with pytest.raises(Exception) as caught:
        dspy.Predict("question -> answer")(question=f"q {unique}")

    error_type = type(caught.value).__name__
    calls = lm_spans(spans())  # one; more before DSPy 3.3, whose ChatAdapter retries any error with JSONAdapter
    assert len(calls) == 1 if DSPY_VERSION >= (3, 3) else len(calls) > 1
    assert {call.attributes[semconv.ERROR_TYPE] for call in calls} == {error_type}
    got = metric_series(reader)
    # A failed call bills nothing and never reached DSPy's finalize: only its duration, with error.type.
    assert set(got) == {DURATION, MODULE}
    assert {k: n for k, (n, _) in got[DURATION].items()} == {
        lm_attributes("predict", **{semconv.ERROR_TYPE: error_type}): len(calls)}
    assert {k: n for k, (n, _) in got[MODULE].items()} == {
        key(**{semconv.MODULE_PATH: "predict", semconv.ERROR_TYPE: error_type}): 1}


def test_histograms_use_the_spec_buckets_and_units(metered, make_lm, unique):
    _, reader = metered
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    predict(question=f"q {unique}")
    predict(question=f"q2 {unique}")  # the same instructions again: the stand-in's prefix cache reports cached tokens
    found = {metric.name: metric for rm in reader.get_metrics_data().resource_metrics
             for sm in rm.scope_metrics for metric in sm.metrics}
    expected = {DURATION: ("s", semconv.DURATION_BUCKETS), TOKENS: ("{token}", semconv.TOKEN_BUCKETS),
                MODULE: ("s", semconv.MODULE_DURATION_BUCKETS)}
    for name, (unit, buckets) in expected.items():
        metric = found[name]
        assert metric.unit == unit
        assert {tuple(point.explicit_bounds) for point in metric.data.data_points} == {buckets}
    assert semconv.TOKEN_BUCKETS == (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                                     16777216, 67108864)
    assert semconv.DURATION_BUCKETS == (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                                        40.96, 81.92)
    counters = {COST: "USD", CACHED: "{token}", REQUESTS: "{request}"}
    for name, unit in counters.items():
        assert (found[name].unit, found[name].data.is_monotonic) == (unit, True)


def test_labels_stay_low_cardinality_and_totals_match_the_spans(metered, metric_series, make_lm, rag, unique):
    spans, reader = metered
    dspy.configure(lm=make_lm())
    rag(question=f"What is the capital of France? {unique}")
    after_one = {name: set(series) for name, series in metric_series(reader).items()}
    for n in range(3):  # new questions, new response ids: no new series
        rag(question=f"Question {n} {unique}")
    now = {name: set(series) for name, series in metric_series(reader).items()}
    # Prompt-cache tokens get a series with a path's first cache read; it has the cost series' attributes.
    assert now.pop(CACHED, set()) <= now[COST]
    after_one.pop(CACHED, None)
    assert now == after_one
    rag(question=f"Question 0 {unique}")  # cache hits add their own (bounded) series
    examples = [dspy.Example(question=f"Batch {n} {unique}").with_inputs("question") for n in range(3)]
    rag.batch(examples, num_threads=2, disable_progress_bar=True)
    got = metric_series(reader)

    for name, series in got.items():
        for attributes in series:
            assert {k for k, _ in attributes} <= ALLOWED_KEYS, name
            assert not any(unique in str(v) for _, v in attributes), name
    calls = lm_spans(spans())
    hits = [s for s in calls if s.attributes[semconv.CACHE_HIT]]
    assert len(calls) == 2 * 8 and len(hits) == 2
    # One point per LM call: a duration point per provider call, a cache-request point per hit.
    assert sum(n for n, _ in got[DURATION].values()) == len(calls) - len(hits)
    hit_requests = {k: v for k, v in got[REQUESTS].items() if (semconv.CACHE_RESULT, "hit") in k}
    assert sum(hit_requests.values()) == len(hits)
    for token_type, attribute in (("input", semconv.GEN_AI_USAGE_INPUT_TOKENS),
                                  ("output", semconv.GEN_AI_USAGE_OUTPUT_TOKENS)):
        recorded = sum(total for k, (_, total) in got[TOKENS].items() if (semconv.GEN_AI_TOKEN_TYPE, token_type) in k)
        assert recorded == sum(s.attributes[attribute] for s in calls)
    assert sum(got[COST].values()) == pytest.approx(sum(s.attributes[semconv.GEN_AI_USAGE_COST] for s in calls),
                                                    abs=1e-12)
    batch = {k: n for k, (n, _) in got[MODULE].items() if (semconv.MODULE_PATH, "rag.batch") in k}
    assert batch == {key(**{semconv.MODULE_PATH: "rag.batch"}): 1}


def test_nothing_counted_twice_with_litellm_callbacks_and_openinference_on(metered, metric_series, lm_server,
                                                                          unique):
    """DSPy's litellm engine with LiteLLM's own OTel callback (metrics on) and OpenInference's LiteLLM
    instrumentor: lmscope still records one point per call, and LiteLLM's metrics stay in its provider."""
    import litellm
    from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig
    from openinference.instrumentation.litellm import LiteLLMInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans, reader = metered
    their_reader = InMemoryMetricReader()
    their_meters = MeterProvider(metric_readers=[their_reader])
    litellm_otel = OpenTelemetry(config=OpenTelemetryConfig(exporter=InMemorySpanExporter(), enable_metrics=True),
                                 tracer_provider=TracerProvider(), meter_provider=their_meters)
    openinference = LiteLLMInstrumentor()
    openinference.instrument(tracer_provider=TracerProvider())
    litellm.callbacks = [*litellm.callbacks, litellm_otel]
    try:
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x",
                                  **engine_options("litellm")))
        predict = dspy.Predict("question -> answer")
        for n in range(2):
            predict(question=f"q{n} {unique}")
        theirs = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(n for n, _ in theirs.values()) < 2:
            theirs = metric_series(their_reader).get(DURATION, {})  # LiteLLM logs from a worker thread
            time.sleep(0.05)
    finally:
        litellm.logging_callback_manager.remove_callback_from_all_lists(litellm_otel)  # LiteLLM copies it around
        openinference.uninstrument()
        their_meters.shutdown()

    assert litellm_otel not in litellm.logging_callback_manager.get_all_callbacks()
    assert sum(n for n, _ in theirs.values()) == 2  # LiteLLM really recorded both calls on its side
    calls = lm_spans(spans())
    assert len(calls) == 2
    got = metric_series(reader)
    assert {k: n for k, (n, _) in got[DURATION].items()} == {lm_attributes("predict"): 2}
    assert got[TOKENS][lm_attributes("predict", **{semconv.GEN_AI_TOKEN_TYPE: "input"})] == (
        2, sum(s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in calls))
    assert reader.get_metrics_data().resource_metrics[0].scope_metrics[0].scope.name == "lmscope"


def test_a_call_with_both_cache_tiers_off_is_not_a_cache_request(metered, metric_series, make_lm, unique,
                                                                   monkeypatch):
    """With `dspy.configure_cache` turning both tiers off, DSPy's cache does nothing: no cache hit or miss is
    counted, while the call itself is (its duration and tokens)."""
    monkeypatch.setattr(dspy, "cache", dspy.cache)  # the session's cache is back on teardown
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    spans, reader = metered
    dspy.configure(lm=make_lm())
    dspy.Predict("question -> answer")(question=f"What is the capital of Chile? {unique}")

    got = metric_series(reader)
    assert REQUESTS not in got
    assert sum(count for count, _ in got[DURATION].values()) == 1
    (span,) = lm_spans(spans())
    assert span.attributes[semconv.SETTINGS_PREFIX + "cache"] is False
