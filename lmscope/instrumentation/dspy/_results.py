"""Turn what DSPy's `finalize` saw (its `CallResult`) into one `LMCall`.

Read by duck typing so this module needs no DSPy import. Facts it relies on (docs/dspy-internals.md §4, §5):
a cache hit zeroes `usage` but keeps the original call's `cost`; native results keep the original usage
on `responses[i].usage`; LiteLLM results carry the ModelResponse in `raw`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...telemetry._lm_call import LMCall
from .._litellm_table import zero_is_unpriced
from .._token_counts import non_empty_str, usage_into

_NATIVE_COST_KIND = "estimate"  # DSPy priced it from its bundled snapshot of LiteLLM's price map


def _plain(value: Any) -> Mapping[str, Any]:
    if value is None:
        return _NO_MAPPING
    if type(value) is dict or isinstance(value, Mapping):  # a dict first: the Mapping ABC check is slow
        return value
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else _NO_MAPPING


_NO_MAPPING: Mapping[str, Any] = MappingProxyType({})


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def engine_name(lm: Any, result: Any) -> str:
    raw = getattr(result, "raw", None)
    if type(lm).__name__ == "DummyLM":
        return "dummy"
    if raw is not None and type(raw).__module__.startswith("litellm"):
        return "litellm"
    if getattr(result, "responses", None):
        return "native"
    return "legacy"


def _finish_reasons(result: Any) -> tuple[str, ...]:
    responses = getattr(result, "responses", None) or ()
    reasons = [getattr(response, "finish_reason", None) for response in responses]
    if not reasons:
        choices = getattr(getattr(result, "raw", None), "choices", None) or ()
        reasons = [getattr(choice, "finish_reason", None) for choice in choices]
    return tuple(str(reason) for reason in reasons if reason)


def _response_id(result: Any) -> str | None:
    responses = getattr(result, "responses", None)
    source = responses[0] if responses else getattr(result, "raw", None)
    return non_empty_str(getattr(source, "id", None))


def _original_tokens(result: Any, stored_record: Any) -> int | None:
    """Tokens the cached answer cost when it was first produced, if anything still records them: on DSPy's native
    engine, the sum over its responses (one per request: `n=3` may have been three, which DSPy combined)."""
    responses = getattr(result, "responses", None)
    if responses:
        usages = [usage for usage in (getattr(response, "usage", None) for response in responses) if usage is not None]
        if usages:
            return sum(_count(getattr(usage, "input_tokens", 0)) + _count(getattr(usage, "output_tokens", 0))
                       for usage in usages)
    usage = _plain(getattr(stored_record, "usage", None))
    if usage:
        return _count(usage.get("prompt_tokens")) + _count(usage.get("completion_tokens"))
    return None


class LegacyCall:
    """What lmscope reads of DSPy 3.4's `PreparedCall`, for DSPy 3.0-3.3: whether the call asked for the cache."""

    __slots__ = ("cache",)

    def __init__(self, cache: bool) -> None:
        self.cache = cache


class LegacyResult:
    """A DSPy 3.0-3.3 LM response (LiteLLM's `ModelResponse`, or its Responses API object) seen as 3.4's LiteLLM
    `CallResult` (`CallResult.legacy`): `raw` is the response, `usage` its usage (emptied by DSPy's cache on a hit,
    which sets `cache_hit` on the copy), `cost` LiteLLM's `response_cost` (the original call's on a hit)."""

    __slots__ = ("cache_hit", "cost", "raw", "response_model", "usage")
    responses = None
    cost_details = None

    def __init__(self, response: Any) -> None:
        self.raw = response
        self.usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", None)
        self.cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
        self.cache_hit = bool(getattr(response, "cache_hit", False))
        self.response_model = getattr(response, "model", None)


def lm_call_from_result(lm: Any, result: Any, *, model: str, provider: str | None, cache_layer: str | None,
                        stored_record: Any, duration_s: float, module_path: str | None) -> LMCall:
    engine = engine_name(lm, result)
    call = LMCall(model=model, provider=provider, engine=engine, duration_s=duration_s, module_path=module_path,
                  response_model=non_empty_str(getattr(result, "response_model", None)),
                  response_id=_response_id(result), finish_reasons=_finish_reasons(result))
    cost = getattr(result, "cost", None)
    cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    if getattr(result, "cache_hit", False):
        call.cache_hit = True
        call.cache_layer = cache_layer
        call.cost_usd = 0.0
        call.cost_source = "lmscope"  # a cache hit bills nothing: our statement, not a price lookup
        call.saved_usd = cost
        call.saved_tokens = _original_tokens(result, stored_record)
        return call
    # Chat Completions' names, or the Responses API's (`model_type="responses"` on DSPy's litellm engine)
    usage_into(call, _plain(getattr(result, "usage", None)))
    if cost == 0.0 and engine == "litellm" and zero_is_unpriced(model, provider):
        cost = None
    if cost is not None:
        call.cost_usd = cost
        if engine == "litellm":
            call.cost_source = "litellm"
        elif _plain(getattr(result, "cost_details", None)).get("kind") == _NATIVE_COST_KIND:
            call.cost_source = "dspy"
        else:
            call.cost_source = "provider"
    return call
