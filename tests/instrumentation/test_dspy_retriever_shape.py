"""A user's retriever module is a RETRIEVER span because of what it returns, whatever its class is called; a module
that asked an LM, or returned something else, stays a CHAIN span. Embedding the query (a hosted `dspy.Embedder`,
a batch DSPy's cache answers) is searching, not asking an LM: such a module is a retriever all the same."""

from __future__ import annotations

import dspy
import numpy as np
import pytest

from lmscope.telemetry import _semconv as semconv

CORPUS = ["Paris is the capital of France.", "Berlin is the capital of Germany."]


class Lookup(dspy.Module):  # no "retriev" in the name
    def forward(self, query):
        return dspy.Prediction(passages=[text for text in CORPUS if query.lower() in text.lower()])


class KeywordSearch(dspy.Module):
    def forward(self, query):
        return [text for text in CORPUS if query.lower() in text.lower()]


class Formatter(dspy.Module):
    def forward(self, query):
        return dspy.Prediction(answer=query.upper())


class Marked(dspy.Module):
    lmscope_span_kind = "RETRIEVER"  # the explicit mark, for a retriever whose output says nothing

    def forward(self, query):
        return {"hits": 0}


class Chunker(dspy.Module):
    lmscope_span_kind = "CHAIN"  # the explicit mark the other way: its list of strings is not a search's result

    def forward(self, query):
        return query.split(". ")


@pytest.mark.parametrize("module", [Lookup(), KeywordSearch()], ids=["prediction", "list"])
def test_a_module_returning_passages_is_a_retriever_with_its_documents(spans, module):
    module(query="paris")
    (span,) = spans()
    assert span.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    prefix = f"{semconv.RETRIEVAL_DOCUMENTS}.0."
    assert span.attributes[prefix + semconv.DOCUMENT_CONTENT] == CORPUS[0]
    assert span.attributes[prefix + semconv.DOCUMENT_ID] == "0"
    assert f"{semconv.RETRIEVAL_DOCUMENTS}.1.{semconv.DOCUMENT_ID}" not in span.attributes


def test_other_outputs_stay_chain_and_the_mark_still_works(spans):
    Formatter()(query="paris")
    KeywordSearch()(query="nowhere")  # no passages found: nothing says it retrieved
    Marked()(query="x")
    Chunker()(query="One. Two.")
    formatter, empty, marked, chunker = spans()
    assert formatter.attributes[semconv.SPAN_KIND] == "CHAIN"
    assert empty.attributes[semconv.SPAN_KIND] == "CHAIN"
    assert marked.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert chunker.attributes[semconv.SPAN_KIND] == "CHAIN"
    assert not any(key.startswith(semconv.RETRIEVAL_DOCUMENTS) for key in chunker.attributes)


class AskingSearch(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("query -> passages: list[str]")

    def forward(self, query):
        return dspy.Prediction(passages=self.predict(query=query).passages)


def test_a_module_that_asked_an_lm_for_passages_is_not_a_retriever(spans, make_lm):
    dspy.configure(lm=make_lm())
    AskingSearch()(query="paris")
    outer = next(s for s in spans() if s.name == "asking_search")
    assert outer.attributes[semconv.SPAN_KIND] == "CHAIN"


class VectorSearch(dspy.Module):
    """A user's own vector search: embeds the corpus once and each query with a `dspy.Embedder`."""

    def __init__(self, embedder):
        super().__init__()
        self.embedder = embedder
        self.vectors = embedder(CORPUS)

    def forward(self, query):
        best = int((self.vectors @ self.embedder(query)).argmax())
        return dspy.Prediction(passages=[CORPUS[best]], indices=[best])


@pytest.mark.parametrize("caching", [False, True], ids=["sent", "cache-hit"])
def test_a_module_that_embedded_its_query_with_a_hosted_model_is_a_retriever(dspy_and_litellm, lm_server, unique,
                                                                              caching):
    embedder = dspy.Embedder("openai/text-embedding-3-small", caching=caching, api_base=lm_server.base_url,
                             api_key="sk-anything")
    search = VectorSearch(embedder)
    query = f"capital of Germany {unique}"
    if caching:
        embedder(query)  # the query's vector is in DSPy's cache: the module's embedding is a cache-hit span
    before = len(dspy_and_litellm())
    found = search(query=query)

    outer = next(span for span in dspy_and_litellm()[before:] if span.name == "vector_search")
    assert outer.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert outer.attributes[semconv.LM_CALLS] == 1
    assert outer.attributes[semconv.CACHE_HITS] == int(caching)
    prefix = f"{semconv.RETRIEVAL_DOCUMENTS}.0."
    assert outer.attributes[prefix + semconv.DOCUMENT_ID] == str(found.indices[0])
    assert outer.attributes[prefix + semconv.DOCUMENT_CONTENT] == found.passages[0]


class NumpySearch(dspy.Module):
    """A search written with numpy: corpus indices and scores as arrays, or float32 scores in dicts."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, query):
        scores = np.array([0.25, 0.75], dtype=np.float32)
        order = np.argsort(-scores)
        if self.shape == "dicts":
            return [{"id": f"doc-{i}", "text": CORPUS[i], "score": scores[i]} for i in order]
        return dspy.Prediction(passages=[CORPUS[i] for i in order], indices=order, scores=scores[order])


class MarkedNumpySearch(NumpySearch):
    lmscope_span_kind = "RETRIEVER"  # a list of dicts says nothing by itself


@pytest.mark.parametrize("shape", ["arrays", "dicts"])
def test_numpy_indices_and_scores_are_the_documents_ids_and_scores(spans, shape):
    (MarkedNumpySearch if shape == "dicts" else NumpySearch)(shape)(query="capital")
    (span,) = spans()
    documents = [(span.attributes[f"{semconv.RETRIEVAL_DOCUMENTS}.{n}.{semconv.DOCUMENT_ID}"],
                  span.attributes[f"{semconv.RETRIEVAL_DOCUMENTS}.{n}.{semconv.DOCUMENT_SCORE}"]) for n in (0, 1)]
    ids = ["doc-1", "doc-0"] if shape == "dicts" else ["1", "0"]
    assert documents == [(ids[0], 0.75), (ids[1], 0.25)]


class WideSearch(dspy.Module):
    def forward(self, query):
        return dspy.Prediction(passages=[f"passage {index} about {query}" for index in range(40)])


def test_a_retriever_span_says_how_many_documents_it_returned_past_those_it_lists(spans):
    """The span lists the first 32 documents; how many the retriever returned says the rest were left out."""
    WideSearch()(query="paris")
    (span,) = spans()
    listed = {key.split(".")[2] for key in span.attributes if key.startswith(f"{semconv.RETRIEVAL_DOCUMENTS}.")}
    assert listed == {str(index) for index in range(32)}
    assert span.attributes[semconv.RETRIEVAL_DOCUMENT_COUNT] == 40
    assert span.attributes[f"{semconv.RETRIEVAL_DOCUMENTS}.31.{semconv.DOCUMENT_CONTENT}"] == "passage 31 about paris"
