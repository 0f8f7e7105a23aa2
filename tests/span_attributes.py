"""Hand-built span attributes for the tests of what reads finished spans (console tree, report, HTML page).

Loaded by tests/conftest.py (tests/ is not on sys.path under --import-mode=importlib); import it as
`from span_attributes import lm_attributes`.
"""

from __future__ import annotations

from typing import Any

from lmscope.telemetry import _semconv as semconv


def lm_attributes(model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
                  cost: float | None = None, **extra: Any) -> dict[str, Any]:
    """An LM span's usage and cost as lmscope writes them; no cost means `lmscope.cost.unknown=true`."""
    attributes: dict[str, Any] = {
        semconv.SPAN_KIND: semconv.KIND_LLM,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached_tokens,
        semconv.CACHE_HIT: False,
    }
    if cost is None:
        attributes[semconv.COST_UNKNOWN] = True
    else:
        attributes[semconv.GEN_AI_USAGE_COST] = cost
    return {**attributes, **extra}
