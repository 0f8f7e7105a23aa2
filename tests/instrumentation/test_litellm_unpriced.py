"""A model LiteLLM has no price for is unpriced, never $0, even once a `litellm.Router` registered it.

A Router adds each deployment's model to LiteLLM's price table, priced or not, and from then on LiteLLM prices every
call of that model 0.0 (`_hidden_params["response_cost"]`) where it gave none before. lmscope recorded that 0.0 as the
call's cost: `gen_ai.usage.cost=0.0` on plain calls, streams, Router calls and DSPy's litellm engine, and `track()`
summed it as spend, while DSPy's native engine said unknown.
"""

from __future__ import annotations

from typing import Any

import dspy
import litellm
from dspy_release import engine_options
from test_dspy_cache_fidelity import instrumented

from lmscope.telemetry import _semconv as semconv


def _costs(spans: list[Any]) -> list[tuple[str, Any, Any]]:
    return [(span.name, span.attributes.get(semconv.GEN_AI_USAGE_COST), span.attributes.get(semconv.COST_UNKNOWN))
            for span in spans if span.name.startswith("chat ")]


def test_a_model_a_router_registered_without_a_price_is_unpriced(litellm_spans: Any, lm_server: Any,
                                                                 unique: str) -> None:
    model = f"openai/private-{unique}"
    asked = {"api_base": lm_server.base_url, "api_key": "sk-anything",
             "messages": [{"role": "user", "content": f"Capital of France? {unique}"}]}
    router = litellm.Router(model_list=[{"model_name": "private", "litellm_params": {"model": model, **asked}}])
    assert litellm.completion(model=model, **asked)._hidden_params["response_cost"] == 0.0  # what LiteLLM says
    list(litellm.completion(model=model, stream=True, stream_options={"include_usage": True}, **asked))
    router.completion(model="private", messages=asked["messages"])
    name = f"chat private-{unique}"
    assert _costs(litellm_spans()) == [(name, None, True)] * 3


def test_dspy_on_litellm_reports_the_routers_unpriced_model_as_unknown(lm_server: Any, unique: str) -> None:
    model = f"openai/private-dspy-{unique}"
    options = {"api_base": lm_server.base_url, "api_key": "sk-anything"}
    litellm.Router(model_list=[{"model_name": "private", "litellm_params": {"model": model, **options}}])
    with instrumented() as spans:
        dspy.LM(model, cache=False, **options, **engine_options("litellm"))(f"Capital of France? {unique}")
        assert _costs(list(spans())) == [(f"chat private-dspy-{unique}", None, True)]
