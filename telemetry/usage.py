"""`lmscope.track()`: a usage tracker that survives threads and counts cache hits.

DSPy's own tracker is deep-copied into every worker thread and never merged back (research
dspy-internals §5); ours is one shared, locked object carried in the OpenTelemetry context, which the
instrumentation re-attaches in worker threads and which asyncio tasks inherit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping

from opentelemetry import context as otel_context

_KEY = otel_context.create_key("lmscope-usage-trackers")


@dataclass
class ModelUsage:
    """What one model was asked for inside a `track()` block."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the provider served from its prompt cache (billed at the cache-read price)."""
    requests: int = 0
    cached_requests: int = 0
    """Calls DSPy answered from its own response cache (no provider call, nothing billed)."""
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    """What the cached requests cost when they were first made."""
    unpriced_requests: int = 0
    """Billed requests whose price is unknown: their cost is not in `cost_usd`."""


class Usage:
    """Per-model usage collected by a `track()` block; safe to read while other threads still add."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, ModelUsage] = {}

    def record(self, model: str, *, input_tokens: int, output_tokens: int, cached_tokens: int,
               cost_usd: float | None, cache_hit: bool, saved_usd: float | None) -> None:
        with self._lock:
            usage = self._by_model.get(model)
            if usage is None:
                usage = self._by_model[model] = ModelUsage()
            usage.requests += 1
            if cache_hit:
                usage.cached_requests += 1
                usage.saved_usd += saved_usd or 0.0
                return
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            usage.cached_tokens += cached_tokens
            if cost_usd is None:
                usage.unpriced_requests += 1
            else:
                usage.cost_usd += cost_usd

    def by_model(self) -> dict[str, dict[str, Any]]:
        """A snapshot: model -> input_tokens, output_tokens, cached_tokens, requests, cached_requests,
        cost_usd, saved_usd, unpriced_requests."""
        with self._lock:
            return {model: asdict(usage) for model, usage in self._by_model.items()}

    def total(self) -> dict[str, Any]:
        """The same fields summed over all models."""
        total = ModelUsage()
        for usage in self.by_model().values():
            for field, value in usage.items():
                setattr(total, field, getattr(total, field) + value)
        return asdict(total)

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
