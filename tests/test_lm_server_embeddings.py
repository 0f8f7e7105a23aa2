"""The stand-in server's /v1/embeddings: OpenAI's wire shape, real token counts, and what LiteLLM and DSPy read."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="lmscope-dspy-cache-"))

import dspy
import httpx
import litellm
import numpy as np

from lmscope._lm_server import count_tokens


def test_embeddings_shape_and_token_counts(server):
    texts = ["Paris is the capital of France.", "Hamlet is a play by Shakespeare."]
    with httpx.Client(base_url=server.base_url) as http:
        body = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": texts,
                                              "dimensions": 16}).json()
        again = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": texts[0],
                                               "dimensions": 16}).json()
        bad = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": []})

    assert (body["object"], body["model"]) == ("list", "text-embedding-3-small")
    tokens = sum(count_tokens(text) for text in texts)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert [item["index"] for item in body["data"]] == [0, 1]
    first, second = (np.array(item["embedding"]) for item in body["data"])
    assert first.shape == (16,) and np.isclose(np.linalg.norm(first), 1.0) and not np.allclose(first, second)
    assert again["data"][0]["embedding"] == body["data"][0]["embedding"]  # same text, same vector
    assert bad.status_code == 400 and "'input'" in bad.json()["error"]["message"]
    assert (server.embedding_requests, server.embedding_tokens) == (2, tokens + count_tokens(texts[0]))
    assert server.requests == 0  # chat requests are counted apart


def test_litellm_reads_base64_vectors_and_usage(server):
    """The openai client asks for base64 by default: the server answers float32, as OpenAI does."""
    response = litellm.embedding(model="openai/text-embedding-3-small", input=["one", "two words"],
                                 api_base=server.base_url, api_key="sk-anything")
    assert response.usage.prompt_tokens == count_tokens("one") + count_tokens("two words")
    vectors = [np.array(item["embedding"]) for item in response.data]
    assert [v.shape for v in vectors] == [(64,), (64,)]
    assert all(np.isclose(np.linalg.norm(v), 1.0, atol=1e-5) for v in vectors)


def test_dspy_embedder_batches_against_the_server(server):
    embedder = dspy.Embedder("openai/text-embedding-3-small", batch_size=2, api_base=server.base_url,
                             api_key="sk-anything", caching=False)
    matrix = embedder(["a", "b", "c"])
    assert matrix.shape == (3, 64)
    assert server.embedding_requests == 2  # DSPy sends batches of 2
    assert server.embedding_tokens == sum(count_tokens(text) for text in "abc")
