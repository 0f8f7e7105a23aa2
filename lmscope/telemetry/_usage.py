"""`lmscope.track()`: a usage tracker that survives threads and counts cache hits.

DSPy's own tracker is deep-copied into every worker thread and never merged back (docs/dspy-internals.md
§7); ours is one shared, locked object carried in the OpenTelemetry context, which the
instrumentation re-attaches in worker threads and which asyncio tasks inherit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context

from ._lm_call import LMCall
from ._spend import Spend

_KEY = otel_context.create_key("lmscope-usage-trackers")


def _figures(spend: Spend) -> dict[str, Any]:
    """The documented `by_model()` fields, named as `Spend` names them."""
    return {"calls": spend.calls, "input_tokens": spend.input_tokens, "output_tokens": spend.output_tokens,
            "cached_tokens": spend.cached_tokens, "cost_usd": spend.cost_usd, "cache_hits": spend.cache_hits,
            "saved_usd": spend.saved_usd, "unpriced_calls": spend.unpriced_calls}


class Usage:
    """Per-model usage collected by a `track()` block; safe to read while other threads still add.

    `calls` counts every LM call; `cache_hits` are the calls among them that DSPy or LiteLLM answered from its own cache
    (nothing billed, `saved_usd` is what they first cost); `cached_tokens` are prompt tokens the provider read
    from its prompt cache; `unpriced_calls` are calls whose price is unknown and so not in `cost_usd`.
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
        """A snapshot: model -> calls, input_tokens, output_tokens, cached_tokens, cost_usd, cache_hits, saved_usd,
        unpriced_calls."""
        with self._lock:
            return {model: _figures(spend) for model, spend in self._by_model.items()}

    def total(self) -> dict[str, Any]:
        """The same fields summed over all models."""
        total = Spend()
        with self._lock:
            for spend in self._by_model.values():
                total.add(spend)
        return _figures(total)

    def __repr__(self) -> str:
        return f"Usage({self.by_model()!r})"


@contextmanager
def track() -> Iterator[Usage]:
    """Count every LM call made inside the block, in this thread, its DSPy workers, its tasks and the work it submits
    to thread pools (under `lmscope.instrument()`)."""
    usage = Usage()
    outer = active_trackers(otel_context.get_current())
    token = otel_context.attach(otel_context.set_value(_KEY, (*outer, usage)))
    try:
        yield usage
    finally:
        otel_context.detach(token)


def active_trackers(ctx: Mapping[Any, Any]) -> tuple[Usage, ...]:
    return ctx.get(_KEY) or ()
