"""One finished LM call, as every consumer (span attributes, roll-ups, `track()`, metrics) sees it.

Built once per call by an instrumentor; the consumers read it and never look at library objects, so
they cannot disagree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LMCall:
    model: str
    """The requested model without its provider prefix (`gpt-4o-mini`)."""
    provider: str | None
    input_tokens: int = 0
    """Billed prompt tokens, cached prompt tokens included (OTel GenAI semantics); 0 on a cache hit."""
    output_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the provider read from its prompt cache (a subset of input_tokens)."""
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    """The tokens are LiteLLM's count, not the provider's bill (a stream without a usage chunk, DSPy's or the app's own
    LiteLLM call): cached tokens are unknown, and the cost is priced from the count (`lmscope.usage.estimated`)."""
    cost_usd: float | None = None
    """What the call was billed; None when the price is unknown; 0.0 on a cache hit."""
    cost_source: str | None = None
    cache_hit: bool = False
    cache_used: bool = False
    """DSPy's response cache was consulted: a hit, or a miss that then called the provider."""
    cache_layer: str | None = None
    saved_usd: float | None = None
    """On a cache hit: what the original call cost."""
    saved_tokens: int | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    engine: str | None = None
    duration_s: float = 0.0
    error_type: str | None = None
    module_path: str | None = None
    operation: str = "chat"
    """`gen_ai.operation.name`: chat, text_completion or embeddings."""
    phase: str = "serve"
    """`lmscope.phase` where the call ran: optimize, evaluate or serve."""
