"""`lmscope.track()`: a usage tracker that survives threads and counts cache hits.

DSPy's own tracker is deep-copied into every worker thread and never merged back (research
dspy-internals §5); ours is one shared, locked object carried in the OpenTelemetry context, which the
instrumentation re-attaches in worker threads and which asyncio tasks inherit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from opentelemetry import context as otel_context

from ._lm_call import LMCall
from ._spend import Spend

_KEY = otel_context.create_key("lmscope-usage-trackers")


def _public(spend: Spend) -> dict[str, Any]:
    """The documented `by_model()` fields: tokens, requests (DSPy cache hits among them), cost, savings."""
    return {"input_tokens": spend.input_tokens, "output_tokens": spend.output_tokens,
            "cached_tokens": spend.cached_tokens, "requests": spend.calls, "cached_requests": spend.cache_hits,
            "cost_usd": spend.cost_usd, "saved_usd": spend.saved_usd, "unpriced_requests": spend.unpriced_calls}


class Usage:
    """Per-model usage collected by a `track()` block; safe to read while other threads still add.

    `cached_tokens` are prompt tokens the provider read from its prompt cache; `cached_requests` are
    calls DSPy answered from its own cache (nothing billed, `saved_usd` is what they first cost);
    `unpriced_requests` are billed calls whose price is unknown and so not in `cost_usd`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, Spend] = {}

    def record(self, call: LMCall) -> None:
        with self._lock:
            spend = self._by_model.get(call.model)
            if spend is None:
                spend = self._by_model[call.model] = Spend()
            spend.add_call(call)

    def by_model(self) -> dict[str, dict[str, Any]]:
        """A snapshot: model -> input_tokens, output_tokens, cached_tokens, requests, cached_requests,
        cost_usd, saved_usd, unpriced_requests."""
        with self._lock:
            return {model: _public(spend) for model, spend in self._by_model.items()}

    def total(self) -> dict[str, Any]:
        """The same fields summed over all models."""
        total = Spend()
        with self._lock:
            for spend in self._by_model.values():
                total.add(spend)
        return _public(total)

    def __repr__(self) -> str:
        return f"Usage({self.by_model()!r})"


@contextmanager
def track() -> Iterator[Usage]:
    """Count every LM call made inside the block, in this thread, its DSPy workers and its tasks."""
    usage = Usage()
    outer = otel_context.get_value(_KEY) or ()
    token = otel_context.attach(otel_context.set_value(_KEY, (*outer, usage)))
    try:
        yield usage
    finally:
        otel_context.detach(token)


def active_trackers(ctx: Mapping[Any, Any]) -> tuple[Usage, ...]:
    return ctx.get(_KEY) or ()
