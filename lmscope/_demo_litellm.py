"""`lmscope demo --litellm`: a plain LiteLLM app (no DSPy) traced, offline.

Three calls, each a trace of its own: a chat completion, a streamed one that asks for the provider's usage chunk, and
an embedding of three passages. `run_workload` is the one definition of this app: the tests that run lmscope next
to other LiteLLM tracers call it too.
"""

from __future__ import annotations

from typing import Any

from ._demo import CORPUS, QUESTIONS, banner

CHAT_MODEL = "openai/gpt-4o-mini"
EMBEDDING_MODEL = "openai/text-embedding-3-small"


def run_workload(api_base: str | None, api_key: str | None, model: str = CHAT_MODEL,
                 embedding_model: str = EMBEDDING_MODEL) -> None:
    """completion, a stream with `stream_options={"include_usage": True}` read to its end, an embedding."""
    import litellm

    where: dict[str, Any] = {"api_base": api_base, "api_key": api_key} if api_base else {}
    banner("1. litellm.completion")
    response = litellm.completion(model=model, messages=[{"role": "user", "content": QUESTIONS[0]}], **where)
    print("answer:", response.choices[0].message.content)
    banner("2. litellm.completion(stream=True), with the provider's usage chunk")
    stream = litellm.completion(model=model, messages=[{"role": "user", "content": QUESTIONS[1]}], stream=True,
                                stream_options={"include_usage": True}, **where)
    print("answer:", "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices))
    banner("3. litellm.embedding of 3 passages")
    vectors = litellm.embedding(model=embedding_model, input=list(CORPUS[:3]), **where)
    print(f"{len(vectors.data)} vectors of {len(vectors.data[0]['embedding'])} dimensions")
