"""`dspy.Embedder` with a local function (`dspy.Embedder(model.encode, batch_size=...)`): one EMBEDDING span per
batch the function receives, `embeddings {function name}`, with the batch size.

DSPy hands each batch to `dspy.clients.embedding._compute_embeddings` (`_acompute_embeddings` for `acall`), which
calls the function, or `litellm.embedding` for a hosted model: the hosted case is left to the LiteLLM instrumentation
(one span per provider request); a batch DSPy's request cache answers never reaches the function: its span is the
cache hit's (`_embedding_cache.py`), which this wrapper tells from a miss by marking the lookup as sent.

A local embedding is not an LM call: no provider request, no tokens, no cost (absent, never $0), and
`lmscope.embedding.local=true` keeps it out of the call counts (`_tree.is_lm_call`, `track()`, roll-ups, metrics).
A provider call the function makes itself (it wraps an API) is its own span below this one, counted there once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from ...telemetry import _semconv as semconv
from ._frames import EMBEDDING_LOOKUP_KEY, EmbeddingLookup, ModuleFrame
from ._runtime import NO_PATH, Runtime
from ._wrappers import traced, traced_async


def local_embeddings(runtime: Runtime, original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    """`_compute_embeddings(model, batch_inputs, caching=False, **kwargs)`, or its coroutine twin. DSPy passes the
    model and the batch by position (`Embedder.__call__`, `_cached_compute_embeddings`): `traced` sees the model as
    the call's first argument."""

    def start(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame | None:
        lookup = otel_context.get_value(EMBEDDING_LOOKUP_KEY)
        if isinstance(lookup, EmbeddingLookup):  # a miss of DSPy's request cache (`_embedding_cache.py`)
            lookup.sent = True
        if runtime.retired or not args or isinstance(model, str) or not callable(model):
            return None  # a hosted model: LiteLLM's span
        return _start(runtime, model, args[0])

    def end(frame: ModuleFrame | None, vectors: Any, error: BaseException | None) -> None:
        if frame is not None:
            runtime.end_module(frame, vectors_summary(vectors) if error is None else None, error)

    wrap = traced_async if is_async else traced
    return wrap(original, start, end, "local embedding span start", suppressible=True)


def _start(runtime: Runtime, function: Any, batch: Any) -> ModuleFrame:
    name = function_name(function)
    extra: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.GEN_AI_OPERATION_EMBEDDINGS,
        semconv.GEN_AI_REQUEST_MODEL: name, semconv.EMBEDDING_MODEL_NAME: name, semconv.EMBEDDING_LOCAL: True,
    }
    if isinstance(batch, (list, tuple)):
        extra[semconv.EMBEDDING_BATCH_SIZE] = len(batch)
    return runtime.start_module(function, (), {"input": batch}, name=f"{semconv.GEN_AI_OPERATION_EMBEDDINGS} {name}",
                                kind=semconv.KIND_EMBEDDING, path_owner=NO_PATH, extra=extra)


def function_name(function: Any) -> str:
    """`embed` for a function, `SentenceTransformer.encode` for a bound method, the class for a callable object; a
    `functools.partial` (`partial(model.encode, normalize_embeddings=True)`) by the function it calls."""
    while isinstance(function, functools.partial):
        function = function.func
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        return type(function).__name__
    owner = getattr(function, "__self__", None)
    if owner is not None and not isinstance(owner, type) and hasattr(function, "__func__"):
        return f"{type(owner).__name__}.{name}"
    return name


def vectors_summary(vectors: Any) -> dict[str, Any] | None:
    """What the span says came out: how many vectors and of what size, never the numbers (KBs per text)."""
    try:
        count = len(vectors)
        first = vectors[0] if count else None
        return {"embeddings": count, "dimensions": len(first) if first is not None else None}
    except Exception:  # noqa: BLE001 - a result DSPy is about to reject anyway: no summary
        return None
