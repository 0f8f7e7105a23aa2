"""One `LMCall` from what LiteLLM returned: a ModelResponse, an EmbeddingResponse, a ResponsesAPIResponse, or a
stream's totals.

Read by duck typing (no LiteLLM import): `usage.prompt_tokens`, `completion_tokens`,
`prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`, or the Responses API's names
for the same counts (`input_tokens`, `output_tokens`, `input_tokens_details`, `output_tokens_details`); the price
LiteLLM put in `_hidden_params["response_cost"]` (its own table, as DSPy's litellm engine reads it).
"""

from __future__ import annotations

from typing import Any

from ...telemetry._lm_call import LMCall
from .._token_counts import get, non_empty_str, usage_into


def litellm_cost(response: Any) -> float | None:
    # A dict on most responses; LiteLLM's `HiddenParams` object on a TextCompletionResponse.
    return _amount(get(getattr(response, "_hidden_params", None), "response_cost"))


def usage_cost(usage: Any) -> float | None:
    """The bill LiteLLM writes on a stream's usage chunk (`usage.cost`): its `response_cost` of the assembled
    response, the price a call not streamed gets (docs/litellm-internals.md §3)."""
    return _amount(get(usage, "cost"))


def _amount(cost: Any) -> float | None:
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None


def call_from_response(response: Any, call: LMCall) -> LMCall:
    """Fill `call` (model, provider, duration already set) from a finished response."""
    usage_into(call, getattr(response, "usage", None))
    call.response_model = non_empty_str(getattr(response, "model", None))
    call.response_id = non_empty_str(getattr(response, "id", None))
    choices = getattr(response, "choices", None) or ()
    call.finish_reasons = tuple(str(reason) for reason in (getattr(c, "finish_reason", None) for c in choices)
                                if reason)
    call.cost_usd = litellm_cost(response)
    if call.cost_usd is not None:
        call.cost_source = "litellm"
    return call


def from_litellm_cache(result: Any) -> bool:
    """LiteLLM answered from its own cache (`litellm.cache`), asking no provider: a response it flags
    `_hidden_params["cache_hit"]` and prices 0.0, or a stream it replays (provider `cached_response`). An `aembedding`
    batch LiteLLM flags but does not price may have been partly sent (docs/litellm-internals.md §2): not a hit."""
    hidden = getattr(result, "_hidden_params", None)
    return ((get(hidden, "cache_hit") is True and _amount(get(hidden, "response_cost")) == 0.0)
            or getattr(result, "custom_llm_provider", None) == "cached_response")


def as_cache_hit(call: LMCall, saved_usd: float | None) -> None:
    """`call` was answered from LiteLLM's cache: nothing billed, as for a DSPy cache hit; the tokens the cached answer
    carries, and their price `saved_usd`, are what the hit saved."""
    call.cache_hit = True
    call.saved_tokens, call.saved_usd = call.input_tokens + call.output_tokens, saved_usd
    call.input_tokens = call.output_tokens = call.cached_tokens = call.reasoning_tokens = 0
    call.usage_estimated = False
    call.cost_usd, call.cost_source = 0.0, "lmscope"  # a cache hit bills nothing: our statement, not a price lookup


def answers(response: Any) -> list[Any]:
    """The assistant messages of a chat response as plain data, one per choice (`answer`)."""
    out: list[Any] = []
    for choice in getattr(response, "choices", None) or ():
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        calls = [_plain_call(call) for call in getattr(message, "tool_calls", None) or ()]
        if text is None and not calls:
            text = getattr(choice, "text", None)  # text_completion choices
        out.append(answer(text, calls))
    return out


def answer(text: str | None, calls: list[dict[str, Any]]) -> Any:
    """One assistant message as plain data: its text, or text and tool calls (`_messages.output_message_attributes`
    reads both)."""
    return {"text": text, "tool_calls": calls} if calls else text


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


def _plain_call(call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    return tool_call(getattr(call, "id", None), getattr(function, "name", None), getattr(function, "arguments", None))
