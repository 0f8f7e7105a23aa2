"""`dspy.Embedder` batches DSPy's request cache answers (`caching=True`, its default): an `embeddings {model}` span
marked as a cache hit, as an LM call DSPy's cache answers is.

DSPy hands each batch to `dspy.clients.embedding._cached_compute_embeddings` (`_cached_acompute_embeddings` for
`acall`), a `request_cache`d function that calls `_compute_embeddings` only on a miss (docs/dspy-internals.md §5):
that call is the provider request, traced there (LiteLLM's span), or the local function's span
(`_local_embeddings.py`), which marks the lookup as sent. A batch that comes back unmarked was answered from the
cache: its span starts when the lookup did and ends when it returned.

A hosted model's hit is counted as a cache hit (roll-ups, `track()`, metrics), billing nothing, with the batch
size; what it saved is unknown (DSPy caches the vectors, not the provider's bill). A local function's hit is a span
only, as its calls are (`lmscope.embedding.local`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from ...telemetry import _semconv as semconv
from ...telemetry._context_attributes import context_attributes
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._lm_call import LMCall
from ...telemetry._lm_vendors import split_route
from ...telemetry._phase import current_phase
from ...telemetry._usage import active_trackers
from .._providers import provider_given
from ._attributes import as_embedding_request, drop_output_tokens, lm_request_attributes, lm_result_attributes, to_json
from ._frames import EMBEDDING_LOOKUP_KEY, EmbeddingLookup
from ._local_embeddings import function_name, vectors_summary
from ._runtime import Runtime, calling_module
from ._wrappers import traced, traced_async


class _Lookup(EmbeddingLookup):
    __slots__ = ("batch", "context", "model", "provider", "started_ns", "token")

    def __init__(self, model: Any, batch: Any, options: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.batch = model, batch
        self.provider = provider_given(options)
        """The `custom_llm_provider` the Embedder was given: a hit's provider when its model name has no prefix."""
        self.context = otel_context.get_current()
        self.started_ns = time.time_ns()
        self.token = otel_context.attach(otel_context.set_value(EMBEDDING_LOOKUP_KEY, self, self.context))


def cached_embeddings(runtime: Runtime, original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    """`_cached_compute_embeddings(model, batch_inputs, caching=True, **kwargs)` or its coroutine twin: `traced` sees
    the model as the call's first argument, the batch as the next (DSPy passes both by position)."""

    def start(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Lookup | None:
        return None if runtime.retired or not args else _Lookup(model, args[0], kwargs)

    def end(lookup: _Lookup | None, vectors: Any, error: BaseException | None) -> None:
        if lookup is None:
            return
        otel_context.detach(lookup.token)
        if error is None and not lookup.sent:
            try:
                _record_hit(runtime, lookup, vectors)
            except Exception as exc:  # noqa: BLE001 - the batch's vectors reach the program all the same
                report_internal_error("embedding cache hit span", exc)

    wrap = traced_async if is_async else traced
    return wrap(original, start, end, "embedding cache lookup", suppressible=True)


def _record_hit(runtime: Runtime, lookup: _Lookup, vectors: Any) -> None:
    ctx, policy = lookup.context, runtime.content
    hosted = isinstance(lookup.model, str)
    provider, model = split_route(lookup.model) if hosted else (None, function_name(lookup.model))
    if provider is None and hosted:  # a bare model name: the provider the caller named, if any (nothing answered)
        provider = lookup.provider
    phase = current_phase(ctx)
    attributes = lm_request_attributes(model, provider, {}, policy)
    as_embedding_request(attributes)
    attributes[semconv.PHASE], attributes[semconv.CACHE_HIT] = phase, True
    if isinstance(lookup.batch, (list, tuple)):
        attributes[semconv.EMBEDDING_BATCH_SIZE] = len(lookup.batch)
    if not hosted:
        attributes[semconv.EMBEDDING_LOCAL] = True
    scoped = context_attributes(ctx, policy)
    if scoped:
        attributes.update(scoped)
    parent = calling_module(ctx)
    call = LMCall(model=model, provider=provider, engine="litellm", operation=semconv.GEN_AI_OPERATION_EMBEDDINGS,
                  duration_s=(time.time_ns() - lookup.started_ns) / 1e9, phase=phase,
                  module_path=parent.path if parent is not None else None, cache_hit=True, cache_used=True,
                  cost_usd=0.0, cost_source="lmscope")
    if hosted:
        result = lm_result_attributes(call, policy)
        drop_output_tokens(result)
        attributes.update(result)
    if policy.capture_inputs:
        attributes[semconv.INPUT_VALUE], redacted = policy.json(to_json(lookup.batch), semconv.INPUT_VALUE)
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON
        if redacted:
            attributes[semconv.SCRUBBED] = True
    if policy.capture_outputs:
        attributes[semconv.OUTPUT_VALUE] = to_json(vectors_summary(vectors))
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    span = runtime.tracer.start_span(f"{semconv.GEN_AI_OPERATION_EMBEDDINGS} {policy.name(model)[0]}", ctx,
                                     SpanKind.CLIENT, attributes, start_time=lookup.started_ns)
    span.end()
    if not hosted:
        return
    if parent is not None and parent.rolls_up:
        parent.add_call(call)
    for usage in active_trackers(ctx):
        usage.record(call)
    for listener in runtime.lm_call_listeners:
        listener(call)
