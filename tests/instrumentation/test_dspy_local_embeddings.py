"""`dspy.Embedder` with a local function: one EMBEDDING span per batch the function receives, with its size, no
tokens and no cost (absent, never $0), and not counted as an LM call anywhere: not in the module's roll-ups, not in
`track()`, not in `lmscope report` or the console tree."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid

import dspy
import pytest

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_file import records_from_spans
from lmscope.telemetry._tree import build_trees, is_lm_call, render_tree
from lmscope.telemetry._usage import track

TEXTS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Tokyo is in Japan."]
_BILLED = (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.LLM_TOKEN_COUNT_PROMPT,
           semconv.LLM_TOKEN_COUNT_TOTAL, semconv.GEN_AI_USAGE_COST, semconv.LLM_COST_TOTAL, semconv.COST_TOTAL_USD,
           semconv.COST_UNKNOWN, semconv.COST_SOURCE)


class CountingEmbed:
    """A local embedding model: 3-dimensional vectors; remembers every batch it was handed."""

    def __init__(self):
        self.batches = []

    def encode(self, texts):
        self.batches.append(list(texts))
        return [[float(len(text)), float(text.count(" ")), 1.0] for text in texts]


class Searcher(dspy.Module):
    def __init__(self, embedder):
        super().__init__()
        self.embedder = embedder

    def forward(self, texts):
        return dspy.Prediction(vectors=self.embedder(texts))


def test_one_span_per_batch_with_its_size_and_no_tokens_or_cost(spans, tree):
    model = CountingEmbed()
    embedder = dspy.Embedder(model.encode, batch_size=2, caching=False)
    with track() as usage:
        vectors = Searcher(embedder)(texts=TEXTS).vectors

    assert vectors.shape == (3, 3)
    assert model.batches == [TEXTS[:2], TEXTS[2:]]
    finished = spans()
    assert tree(finished) == [("searcher", [("embeddings CountingEmbed.encode", []),
                                            ("embeddings CountingEmbed.encode", [])])]
    searcher, *batches = sorted(finished, key=lambda span: span.start_time)
    assert [span.attributes[semconv.EMBEDDING_BATCH_SIZE] for span in batches] == [2, 1]
    for span, batch in zip(batches, model.batches):
        attributes = span.attributes
        assert attributes[semconv.SPAN_KIND] == "EMBEDDING"
        assert attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
        assert attributes[semconv.GEN_AI_REQUEST_MODEL] == attributes[semconv.EMBEDDING_MODEL_NAME] == \
            "CountingEmbed.encode"
        assert attributes[semconv.EMBEDDING_LOCAL] is True
        assert attributes[semconv.INPUT_VALUE] == json.dumps({"input": batch})
        assert attributes[semconv.OUTPUT_VALUE] == json.dumps({"embeddings": len(batch), "dimensions": 3})
        assert not set(_BILLED) & set(attributes)
        assert not is_lm_call(attributes)
        assert span.parent.span_id == searcher.context.span_id
    assert searcher.attributes[semconv.LM_CALLS] == 0
    assert semconv.COST_TOTAL_USD not in searcher.attributes and semconv.COST_UNKNOWN not in searcher.attributes
    assert usage.total()["calls"] == 0


def test_report_and_tree_count_no_call_and_show_no_price(spans):
    model = CountingEmbed()
    Searcher(dspy.Embedder(model.encode, batch_size=2, caching=False))(texts=TEXTS)

    records = records_from_spans(spans())
    assert summarize(records).total.calls == 0
    text = render_tree(build_trees(records)[0])
    rows = [line for line in text.splitlines() if "embeddings CountingEmbed.encode" in line]
    assert len(rows) == 2
    assert all("$" not in row and "unpriced" not in row for row in rows)  # no price, and none unknown either


def test_a_function_named_as_written(spans):
    def embed_texts(texts):
        return [[1.0, 0.0] for _ in texts]

    dspy.Embedder(embed_texts, caching=False)(["one", "two"])
    (span,) = spans()
    assert span.name == "embeddings embed_texts"
    assert span.attributes[semconv.EMBEDDING_BATCH_SIZE] == 2


def test_a_partial_is_named_by_the_function_it_calls(spans):
    """`partial(model.encode, normalize_embeddings=True)`, as sentence-transformers apps pass options; its cache hit too."""
    model = CountingEmbed()
    embedder = dspy.Embedder(functools.partial(functools.partial(model.encode)), caching=True)
    texts = [f"{text} {uuid.uuid4().hex}" for text in TEXTS]
    embedder(texts)
    embedder(texts)
    miss, hit = spans()
    assert miss.name == hit.name == "embeddings CountingEmbed.encode"
    assert hit.attributes[semconv.CACHE_HIT] is True
    assert miss.attributes[semconv.GEN_AI_REQUEST_MODEL] == hit.attributes[semconv.GEN_AI_REQUEST_MODEL] \
        == "CountingEmbed.encode"


def test_acall_batches_are_spans_too(spans, tree):
    model = CountingEmbed()
    embedder = dspy.Embedder(model.encode, batch_size=1, caching=False)

    class AsyncSearcher(dspy.Module):
        async def aforward(self, texts):
            return dspy.Prediction(vectors=await embedder.acall(texts))

    asyncio.run(AsyncSearcher().acall(texts=TEXTS[:2]))
    assert model.batches == [TEXTS[:1], TEXTS[1:2]]
    assert tree(spans()) == [("async_searcher", [("embeddings CountingEmbed.encode", []),
                                                 ("embeddings CountingEmbed.encode", [])])]


def test_a_batch_dspys_cache_answers_reaches_no_function_and_is_a_cache_hit_span_counted_nowhere(spans, unique):
    model = CountingEmbed()
    embedder = dspy.Embedder(model.encode, batch_size=2)  # caching=True, DSPy's default
    texts = [f"{text} {unique}" for text in TEXTS]
    embedder(texts)
    first = spans()
    with track() as usage:
        embedder(texts)

    assert len(model.batches) == len(first) == 2  # the function ran for the first call's batches only
    hits = spans()[len(first):]
    assert [span.name for span in hits] == ["embeddings CountingEmbed.encode"] * 2
    for span, size in zip(hits, (2, 1), strict=True):
        assert span.attributes[semconv.CACHE_HIT] is True
        assert span.attributes[semconv.EMBEDDING_LOCAL] is True
        assert span.attributes[semconv.EMBEDDING_BATCH_SIZE] == size
        assert not set(_BILLED) & set(span.attributes)
    assert [span.attributes.get(semconv.CACHE_HIT) for span in first] == [None, None]
    assert usage.total()["calls"] == 0  # a local function is no LM call, answered from the cache or not


def test_a_failing_function_raises_unchanged_and_marks_its_span(spans):
    def broken(texts):
        raise RuntimeError("model not loaded")

    with pytest.raises(RuntimeError, match="model not loaded"):
        dspy.Embedder(broken, caching=False)(["x"])
    (span,) = spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == "RuntimeError"


def test_a_function_calling_a_hosted_api_counts_that_call_once(dspy_and_litellm, lm_server, tree, unique):
    """Why a local embedding is not an LM call: the provider request the function makes is one, below it."""
    import litellm

    def through_api(texts):
        response = litellm.embedding(model="openai/text-embedding-3-small", input=texts, api_base=lm_server.base_url,
                                     api_key="sk-anything")
        return [item["embedding"] for item in response.data]

    texts = [f"{text} {unique}" for text in TEXTS[:2]]
    before = (lm_server.embedding_requests, lm_server.embedding_tokens)
    with track() as usage:
        Searcher(dspy.Embedder(through_api, caching=False))(texts=texts)

    billed = lm_server.embedding_tokens - before[1]
    assert lm_server.embedding_requests - before[0] == 1
    finished = dspy_and_litellm()
    assert tree(finished) == [("searcher", [("embeddings through_api", [("embeddings text-embedding-3-small", [])])])]
    assert {span.name: is_lm_call(span.attributes) for span in finished if span.name.startswith("embeddings")} == {
        "embeddings through_api": False, "embeddings text-embedding-3-small": True}
    local = next(span for span in finished if span.name == "embeddings through_api")
    searcher = next(span for span in finished if span.name == "searcher")
    for span in (local, searcher):  # roll-ups: the one provider call, once
        assert span.attributes[semconv.LM_CALLS] == 1 and span.attributes[semconv.USAGE_INPUT_TOKENS] == billed
    assert usage.total()["calls"] == 1 and usage.total()["input_tokens"] == billed
    assert summarize(records_from_spans(finished)).total.calls == 1
