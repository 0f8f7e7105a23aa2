"""`dspy.retrievers.DatabricksRM` calls are RETRIEVER spans listing the documents the index answered, with the
index's document ids and scores, in both of the shapes it returns: `dspy.Prediction(docs=..., doc_ids=...,
extra_columns=...)`, or, with `use_with_databricks_agent_framework=True`, LangChain-style documents
(`page_content`, and `doc_id` and `score` in `metadata`).

A Databricks Vector Search index cannot run here, so `VectorSearchService` below answers the query endpoint's wire
contract as `DatabricksRM._query_via_requests` speaks it (`POST /api/2.0/vector-search/indexes/{index}/query`,
answered with the result's column manifest and its rows). DSPy is made to use that path even where the Databricks SDK
is installed (it is, with MLflow), so the test does not depend on the SDK's own requests.
"""

from __future__ import annotations

import pytest
from retriever_service import JsonService, listed_documents, serving

from lmscope.telemetry import _semconv as semconv

ROWS = [["doc-17", "Paris is the capital of France.", 0.9], ["doc-4", "Berlin is the capital of Germany.", 0.7]]


class VectorSearchService(JsonService):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[dict] = []

    def answer(self, method: str, path: str, body: dict | None) -> dict:
        self.queries.append(body or {})
        return {"manifest": {"columns": [{"name": "id"}, {"name": "text"}, {"name": "score"}]},
                "result": {"data_array": ROWS}}


@pytest.fixture(scope="module")
def service():
    yield from serving(VectorSearchService())


@pytest.mark.parametrize("agent_framework", [False, True], ids=["prediction", "documents"])
def test_a_query_is_a_retriever_span_with_the_indexs_ids_and_scores(spans, service, monkeypatch, agent_framework):
    from dspy.retrievers import databricks_rm

    monkeypatch.setattr(databricks_rm, "_databricks_sdk_installed", False)
    retriever = databricks_rm.DatabricksRM("docs_index", databricks_endpoint=f"http://127.0.0.1:{service.server_port}",
                                           databricks_token="dapi-test-token", k=2,
                                           use_with_databricks_agent_framework=agent_framework)
    answer = retriever("capital of France")

    assert service.queries[-1]["query_text"] == "capital of France"
    assert (answer[0]["page_content"] if agent_framework else answer.docs[0]) == ROWS[0][1]
    (span,) = spans()
    assert span.attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert listed_documents(span) == [(doc_id, score, text) for doc_id, text, score in ROWS]
