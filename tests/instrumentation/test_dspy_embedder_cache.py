"""`dspy.Embedder` with a hosted model and DSPy's request cache on (`caching=True`, its default): a batch the cache
answers sends nothing and is one `embeddings {model}` span marked as a cache hit, billing nothing, counted as a
cache hit in the module's roll-ups, `track()` and the metrics; a batch it misses is the provider request's span, as
before. Against the stand-in server's embeddings endpoint, which counts the requests it receives."""

from __future__ import annotations

import asyncio
import json

import dspy
import pytest

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

MODEL = "embeddings text-embedding-3-small"
TEXTS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Tokyo is in Japan."]


class Indexer(dspy.Module):
    def __init__(self, embedder):
        super().__init__()
        self.embedder = embedder

    def forward(self, texts):
        return dspy.Prediction(vectors=self.embedder(texts))


class AsyncIndexer(Indexer):
    async def aforward(self, texts):
        return dspy.Prediction(vectors=await self.embedder.acall(texts))


@pytest.fixture
def embedder(lm_server):
    return dspy.Embedder("openai/text-embedding-3-small", batch_size=2, api_base=lm_server.base_url,
                         api_key="sk-anything")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_batches_the_cache_answers_are_cache_hit_spans_counted_as_hits(dspy_and_litellm, embedder, lm_server, tree,
                                                                       unique, mode):
    texts = [f"{text} {unique}" for text in TEXTS]
    program = AsyncIndexer(embedder) if mode == "async" else Indexer(embedder)

    def run():
        return asyncio.run(program.acall(texts=texts)) if mode == "async" else program(texts=texts)

    requests = lm_server.embedding_requests
    first = run().vectors
    sent = lm_server.embedding_requests - requests
    misses = dspy_and_litellm()
    with track() as usage:
        again = run().vectors

    assert sent == 2 and lm_server.embedding_requests - requests == 2  # the second run sent nothing
    assert again.tolist() == first.tolist()
    assert [span.attributes.get(semconv.CACHE_HIT) for span in misses if span.name == MODEL] == [False, False]
    finished = dspy_and_litellm()[len(misses):]
    name = "async_indexer" if mode == "async" else "indexer"
    assert tree(finished) == [(name, [(MODEL, []), (MODEL, [])])]
    hits = [span for span in finished if span.name == MODEL]
    for span, size in zip(hits, (2, 1), strict=True):
        attributes = span.attributes
        assert attributes[semconv.CACHE_HIT] is True
        assert attributes[semconv.SPAN_KIND] == "EMBEDDING"
        assert attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
        assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "text-embedding-3-small"
        assert attributes[semconv.EMBEDDING_BATCH_SIZE] == size
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 0
        assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
        assert attributes[semconv.GEN_AI_USAGE_COST] == 0.0
        assert json.loads(attributes[semconv.OUTPUT_VALUE]) == {"embeddings": size, "dimensions": len(first[0])}
        assert span.end_time >= span.start_time
    module = next(span for span in finished if span.name == name)
    assert module.attributes[semconv.CACHE_HITS] == 2
    assert module.attributes[semconv.LM_CALLS] == 2
    assert module.attributes[semconv.USAGE_INPUT_TOKENS] == 0
    assert usage.total()["calls"] == 2 and usage.total()["cache_hits"] == 2
    assert usage.total()["input_tokens"] == 0 and usage.total()["cost_usd"] == 0.0


def test_the_cache_metric_counts_the_miss_that_sent_the_batch_and_the_hit_that_did_not(embedder, unique):
    from memory_spans import memory_provider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.instrumentation.dspy import DSPyInstrumentor
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor
    from lmscope.telemetry._metrics import MetricsRecorder

    reader = InMemoryMetricReader()
    recorder = MetricsRecorder(MeterProvider(metric_readers=[reader]).get_meter("lmscope"))
    tracer = memory_provider()[0].get_tracer("test")
    instrumentors = (DSPyInstrumentor(), LiteLLMInstrumentor())  # as `lmscope.instrument(metrics_exporters=...)`
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer=tracer, lm_call_listeners=[recorder.record_lm_call])
    try:
        texts = [f"{text} {unique}" for text in TEXTS[:2]]
        embedder(texts)
        embedder(texts)
    finally:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()
    points = [point for metric in _metrics(reader) if metric.name == semconv.METRIC_CACHE_REQUESTS
              for point in metric.data.data_points]
    by_result = {(point.attributes.get(semconv.CACHE_RESULT), point.attributes[semconv.GEN_AI_OPERATION_NAME]):
                 point.value for point in points}
    assert by_result == {(semconv.CACHE_RESULT_MISS, "embeddings"): 1, (semconv.CACHE_RESULT_HIT, "embeddings"): 1}


def _metrics(reader):
    data = reader.get_metrics_data()
    return [metric for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics]


def test_a_key_in_the_model_name_of_a_cache_hit_is_redacted_on_every_attribute_naming_it(dspy_and_litellm, lm_server,
                                                                                         unique):
    secret = "sk-proj-" + "Q1w2E3r4T5y6" * 3  # a fine-tuned model's name holding a key, as some gateways want it
    embedder = dspy.Embedder(f"openai/ft:text-embedding-3-small:acme:{secret}", api_base=lm_server.base_url,
                             api_key="sk-anything")
    embedder([f"{TEXTS[0]} {unique}"])
    misses = len(dspy_and_litellm())
    embedder([f"{TEXTS[0]} {unique}"])

    (hit,) = dspy_and_litellm()[misses:]
    assert hit.attributes[semconv.CACHE_HIT] is True
    named = {key: value for key, value in hit.attributes.items() if isinstance(value, str) and "ft:" in value}
    assert set(named) >= {semconv.GEN_AI_REQUEST_MODEL, semconv.EMBEDDING_MODEL_NAME}
    assert not any(secret in value for value in [hit.name, *named.values()])


def test_a_hit_for_a_bare_model_name_names_the_provider_the_embedder_was_given(dspy_and_litellm, lm_server, unique):
    embedder = dspy.Embedder("text-embedding-3-small", custom_llm_provider="openai", api_base=lm_server.base_url,
                             api_key="sk-anything")
    embedder([f"{TEXTS[0]} {unique}"])
    (miss,) = [span for span in dspy_and_litellm() if span.name == MODEL]
    embedder([f"{TEXTS[0]} {unique}"])

    (hit,) = [span for span in dspy_and_litellm() if span.name == MODEL and span is not miss]
    assert hit.attributes[semconv.CACHE_HIT] is True and miss.attributes[semconv.CACHE_HIT] is False
    assert hit.attributes[semconv.GEN_AI_PROVIDER_NAME] == miss.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert hit.attributes[semconv.LLM_PROVIDER] == miss.attributes[semconv.LLM_PROVIDER] == "openai"
