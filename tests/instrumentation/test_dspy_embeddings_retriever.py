"""`dspy.retrievers.Embeddings` embeds each query on its batching thread (`Unbatchify`): that embedding request is a
child of the retriever span that asked for it, in the same trace, with the stand-in server's exact token count,
rolled up into the retriever and counted by `track()`. Concurrent callers whose queries share one request get one
span for it, under one of them: counted once."""

from __future__ import annotations

import dspy
import pytest
from dspy.retrievers import Embeddings
from memory_spans import memory_provider

from lmscope._lm_server import count_tokens
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

CORPUS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Tokyo is in Japan."]
EMBEDDING = "embeddings text-embedding-3-small"


@pytest.fixture
def hosted(lm_server):
    return dspy.Embedder("openai/text-embedding-3-small", caching=False, api_base=lm_server.base_url,
                         api_key="sk-anything")


class Rag(dspy.Module):
    def __init__(self, retriever):
        super().__init__()
        self.retrieve = retriever

    def forward(self, question):
        return dspy.Prediction(context=self.retrieve(question).passages)


def test_the_query_embedding_is_a_child_of_the_retriever_span(dspy_and_litellm, hosted, lm_server, tree, unique):
    retriever = Embeddings(corpus=CORPUS, embedder=hosted, k=2)
    built = len(dspy_and_litellm())  # the corpus is embedded at construction, outside any module
    question = f"What is the capital of France? {unique}"
    before = (lm_server.embedding_requests, lm_server.embedding_tokens)
    with track() as usage:
        Rag(retriever)(question=question)

    billed = lm_server.embedding_tokens - before[1]
    assert lm_server.embedding_requests - before[0] == 1
    assert billed == count_tokens(question)
    finished = dspy_and_litellm()[built:]
    assert tree(finished) == [("rag", [("rag.retrieve", [(EMBEDDING, [])])])]
    by_name = {span.name: span for span in finished}
    retrieve, query = by_name["rag.retrieve"], by_name[EMBEDDING]
    assert len({span.context.trace_id for span in finished}) == 1
    assert query.parent.span_id == retrieve.context.span_id
    assert retrieve.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert query.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == billed
    for span in (retrieve, by_name["rag"]):
        assert span.attributes[semconv.LM_CALLS] == 1
        assert span.attributes[semconv.USAGE_INPUT_TOKENS] == billed
    assert usage.total()["calls"] == 1 and usage.total()["input_tokens"] == billed


def test_concurrent_queries_sharing_a_request_are_counted_once(dspy_and_litellm, hosted, lm_server, unique):
    """`Module.batch` runs the questions on DSPy's worker threads; `Unbatchify` may merge their queries into fewer
    requests. Each request is one span, under one of the retriever spans it served, and the batch's roll-up is the
    server's bill."""
    retriever = Embeddings(corpus=CORPUS, embedder=hosted, k=1)
    built = len(dspy_and_litellm())
    questions = [f"Capital of {country}? {unique}" for country in ("France", "Germany", "Japan", "Italy")]
    before = (lm_server.embedding_requests, lm_server.embedding_tokens)
    Rag(retriever).batch([dspy.Example(question=q).with_inputs("question") for q in questions], num_threads=4)

    requests = lm_server.embedding_requests - before[0]
    billed = lm_server.embedding_tokens - before[1]
    assert billed == sum(count_tokens(question) for question in questions)
    finished = dspy_and_litellm()[built:]
    assert len({span.context.trace_id for span in finished}) == 1
    retrievers = {span.context.span_id: span for span in finished if span.name == "rag.retrieve"}
    queries = [span for span in finished if span.name == EMBEDDING]
    assert len(retrievers) == 4 and 1 <= len(queries) == requests <= 4
    assert all(span.parent.span_id in retrievers for span in queries)
    assert sum(span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for span in queries) == billed
    assert sum(span.attributes[semconv.LM_CALLS] for span in retrievers.values()) == requests
    (batch,) = [span for span in finished if span.name == "rag.batch"]
    assert batch.attributes[semconv.LM_CALLS] == requests and batch.attributes[semconv.USAGE_INPUT_TOKENS] == billed


def test_a_local_embedder_query_is_a_child_of_the_retriever_span(spans, tree):
    def embed(texts):
        return [[float(len(text)), float(text.count("a")), 1.0] for text in texts]

    retriever = Embeddings(corpus=CORPUS, embedder=dspy.Embedder(embed, caching=False), k=1)
    built = len(spans())
    result = Rag(retriever)(question="Tokyo")

    finished = spans()[built:]
    assert tree(finished) == [("rag", [("rag.retrieve", [("embeddings embed", [])])])]
    query = next(span for span in finished if span.name == "embeddings embed")
    assert query.attributes[semconv.EMBEDDING_BATCH_SIZE] == 1
    assert result.context and query.attributes[semconv.INPUT_VALUE] == '{"input": ["Tokyo"]}'


def test_after_uninstrument_a_retriever_still_answers(hosted, lm_server):
    """The batch function wrapped while instrumented stays on the instance and passes plain queries through."""
    from lmscope.instrumentation.dspy import DSPyInstrumentor

    instrumentor = DSPyInstrumentor()
    provider, _exporter = memory_provider()
    instrumentor.instrument(provider.get_tracer("test"))
    retriever = Embeddings(corpus=CORPUS, embedder=hosted, k=2)
    try:
        traced = retriever("Capital of Japan?")
    finally:
        instrumentor.uninstrument()
    untraced = Embeddings(corpus=CORPUS, embedder=hosted, k=2)  # never saw lmscope
    for question in ("Capital of Japan?", "Capital of Germany?"):
        expected = untraced(question)
        assert (retriever(question).passages, retriever(question).indices) == (expected.passages, expected.indices)
    assert (traced.passages, traced.indices) == (untraced("Capital of Japan?").passages,
                                                 untraced("Capital of Japan?").indices)


def test_a_failing_query_embedding_reaches_the_caller_with_an_untraced_traceback(spans):
    """The error comes back from `Unbatchify`'s batching thread, its traceback running through that thread: the
    caller sees the same frames as untraced, none of lmscope's between DSPy's worker and the batch function."""
    def embed(texts):
        if texts != CORPUS:
            raise ConnectionError("embedding service down")
        return [[float(len(text)), 1.0] for text in texts]

    retriever = Embeddings(corpus=CORPUS, embedder=dspy.Embedder(embed, caching=False), k=1)
    with pytest.raises(ConnectionError, match="embedding service down") as raised:
        retriever("Tokyo")

    functions = [(entry.name, str(entry.path).rsplit("/", 1)[-1]) for entry in raised.traceback]
    worker = functions.index(("_worker", "unbatchify.py"))
    assert functions[worker + 1] == ("_batch_forward", "embeddings.py")
    assert not any("lmscope" in str(entry.path) for entry in raised.traceback)
    retrieve = next(span for span in spans() if span.name == "embeddings")
    assert retrieve.status.status_code.name == "ERROR"
