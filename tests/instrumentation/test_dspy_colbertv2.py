"""`dspy.ColBERTv2` calls are RETRIEVER spans with the query, `k` and the documents the service answered, each with
the service's `pid` (not its rank) and score, used directly, held by a module, or as `dspy.settings.rm` under
`dspy.Retrieve`.

The real ColBERTv2 service (a GPU search server over an index) cannot run here, so `ColBERTv2Service` below answers
its wire contract, as `dspy/dsp/colbertv2.py` speaks it: `GET ?query=&k=` or a JSON `POST {"query", "k"}`, answered
with `{"topk": [{"text", "pid", "rank", "score", "prob", "long_text"}, ...]}` best first (`{"error": true,
"message"}` on failure). DSPy memoizes these requests in its own cache (`request_cache`, `dspy.cache`): each test
asks a query no other test asked (`unique`), and the service counts what reaches it.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import dspy
import pytest
from dspy_release import DSPY_VERSION
from retriever_service import JsonService, listed_documents, serving

from lmscope.telemetry import _semconv as semconv

PASSAGES = {  # pid -> text: pids are the service's ids, unrelated to the rank of an answer
    4017: "Paris is the capital and largest city of France.",
    4018: "Berlin is the capital of Germany.",
    9120: "France borders Spain, Italy and Germany.",
    15: "Tokyo is the capital of Japan.",
}


class ColBERTv2Service(JsonService):
    """Ranks PASSAGES by the words they share with the query; records (method, query, k) of every request and the
    `topk` it answered."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, str, int]] = []
        self.answered: list[list[dict]] = []
        self.failing = False

    def answer(self, method: str, path: str, body: dict | None) -> dict:
        if body is None:  # GET ?query=&k=
            params = parse_qs(urlparse(path).query)
            body = {"query": params["query"][0], "k": params["k"][0]}
        query, k = body["query"], int(body["k"])
        self.received.append((method, query, k))
        if self.failing:
            return {"error": True, "message": "index not loaded"}
        words = set(query.lower().replace("?", "").split())
        scored = sorted(((len(words & set(text.lower().rstrip(".").replace(",", "").split())), pid)
                         for pid, text in PASSAGES.items()), key=lambda item: (-item[0], item[1]))[:k]
        total = sum(overlap for overlap, _ in scored) or 1
        topk = [{"text": PASSAGES[pid], "pid": pid, "rank": rank, "score": 20.0 + overlap, "prob": overlap / total,
                 "long_text": PASSAGES[pid]} for rank, (overlap, pid) in enumerate(scored, start=1)]
        self.answered.append(topk)
        return {"topk": topk}


@pytest.fixture(scope="module")
def service():
    yield from serving(ColBERTv2Service())


def _colbert(service, **kwargs):
    return dspy.ColBERTv2(url="http://127.0.0.1", port=service.server_address[1], **kwargs)


def _answered(service, *, text=True):
    """The documents of the service's last answer as a span should list them: its pid, score and text."""
    return [(str(d["pid"]), d["score"], d["text"] if text else None) for d in service.answered[-1]]


def test_a_direct_call_is_a_retriever_span_with_the_services_pids_and_scores(spans, service, unique):
    query = f"What is the capital of France? {unique}"
    passages = _colbert(service)(query, k=2)

    assert service.received[-1] == ("GET", query, 2)
    assert [(p.pid, p.rank) for p in passages] == [(4017, 1), (15, 2)]  # ids, not ranks
    (span,) = spans()
    assert span.name == "colbertv2"
    assert span.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert span.attributes[semconv.MODULE_CLASS] == "ColBERTv2"
    assert span.attributes[semconv.RETRIEVAL_K] == 2
    assert json.loads(span.attributes[semconv.INPUT_VALUE]) == {"query": query, "k": 2, "simplify": False}
    assert listed_documents(span) == _answered(service) == [(str(p.pid), p.score, p.long_text) for p in passages]
    assert span.status.status_code.name == "UNSET"


def test_simplified_answers_over_post_still_list_the_services_pids(spans, service, unique):
    """`simplify=True` returns bare text: the documents come from the service's answer, where the pids are."""
    query = f"France Germany {unique}"
    texts = _colbert(service, post_requests=True)(query, k=3, simplify=False)
    assert service.received[-1] == ("POST", query, 3)

    (span,) = spans()
    assert [doc_id for doc_id, _, _ in listed_documents(span)] == ["9120", "4017", "4018"]
    assert [content for _, _, content in listed_documents(span)] == [p.long_text for p in texts]

    simple = f"Japan {unique}"
    texts = _colbert(service)(simple, k=1, simplify=True)
    assert texts == [PASSAGES[15]]
    assert listed_documents(spans()[-1]) == _answered(service) == [("15", 21.0, PASSAGES[15])]


def test_an_answer_from_dspys_request_cache_is_a_span_with_the_samelisted_documents(spans, service, unique):
    query = f"capital of Japan {unique}"
    colbert = _colbert(service)
    colbert(query, k=2)
    asked = len(service.received)
    colbert(query, k=2)  # DSPy's request cache answers: the service is not asked again

    assert len(service.received) == asked
    first, second = spans()
    assert second.name == "colbertv2" and listed_documents(second) == listed_documents(first)


class ColBERTRag(dspy.Module):
    def __init__(self):
        super().__init__()
        self.retrieve = dspy.Retrieve(k=2)

    def forward(self, question):
        return dspy.Prediction(context=self.retrieve(question).passages)


class HoldsColBERT(dspy.Module):
    def __init__(self, search):
        super().__init__()
        self.search = search

    def forward(self, question):
        return dspy.Prediction(context=self.search(question, k=1, simplify=True))


def test_as_the_settings_retriever_under_dspy_retrieve(spans, service, unique, tree):
    """`dspy.Retrieve` keeps only the texts (its documents are numbered by rank); its ColBERTv2 child has the pids."""
    question = f"Berlin Germany borders {unique}"
    with dspy.context(rm=_colbert(service)):
        result = ColBERTRag()(question=question)

    assert result.context == [PASSAGES[4018], PASSAGES[9120]]
    assert service.received[-1] == ("GET", question, 2)
    finished = spans()
    assert tree(finished) == [("col_bert_rag", [("col_bert_rag.retrieve", [("col_bert_rag.retrieve.colbertv2", [])])])]
    by_name = {span.name: span for span in finished}
    retrieve, colbert = by_name["col_bert_rag.retrieve"], by_name["col_bert_rag.retrieve.colbertv2"]
    assert colbert.parent.span_id == retrieve.context.span_id
    assert listed_documents(colbert) == _answered(service)
    assert [doc_id for doc_id, _, _ in listed_documents(colbert)] == ["4018", "9120"]
    assert [(doc_id, content) for doc_id, _, content in listed_documents(retrieve)] == [
        ("0", PASSAGES[4018]), ("1", PASSAGES[9120])]
    assert colbert.attributes[semconv.RETRIEVAL_K] == 2
    assert colbert.attributes[semconv.LM_CALLS] == 0  # a retriever is no LM call, and nothing above counts one
    assert by_name["col_bert_rag"].attributes[semconv.LM_CALLS] == 0


def test_held_by_a_module_it_is_named_by_its_attribute(spans, service, unique, tree):
    question = f"Tokyo Japan {unique}"
    HoldsColBERT(_colbert(service))(question=question)

    finished = spans()
    assert tree(finished) == [("holds_col_bert", [("holds_col_bert.search", [])])]
    search = next(span for span in finished if span.name == "holds_col_bert.search")
    assert search.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert listed_documents(search) == _answered(service) == [("15", 22.0, PASSAGES[15])]


def test_without_content_capture_the_query_and_texts_stay_out(traced, service, unique):
    finished = traced(False)
    _colbert(service)(f"capital of France {unique}", k=2)

    (span,) = finished()
    assert semconv.INPUT_VALUE not in span.attributes and semconv.OUTPUT_VALUE not in span.attributes
    assert listed_documents(span) == _answered(service, text=False)
    assert span.attributes[semconv.RETRIEVAL_K] == 2


def test_a_service_error_reaches_the_program_unchanged_and_marks_the_span(spans, service, unique):
    # DSPy 3.1 on raises the service's error; 3.0 fails reading the answer's missing `topk`.
    expected = ValueError if DSPY_VERSION >= (3, 1) else KeyError
    message = "ColBERTv2 server returned an error: index not loaded" if expected is ValueError else "topk"
    service.failing = True
    try:
        with pytest.raises(expected, match=message):
            _colbert(service)(f"anything {unique}", k=2)
    finally:
        service.failing = False

    (span,) = spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == expected.__name__
    assert not listed_documents(span)
