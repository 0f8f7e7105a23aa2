"""`litellm.text_completion` / `atext_completion` on the stand-in server: one `text_completion` span each, with the
server's bill and LiteLLM's own price of the response."""

from __future__ import annotations

import asyncio

import litellm
import pytest

from lmscope.telemetry import _semconv as semconv

MODEL = "openai/gpt-4o-mini"


def _ask(lm_server, unique, **kwargs):
    return {"model": MODEL, "prompt": f"Say hi {unique}", "api_base": lm_server.base_url, "api_key": "sk-anything",
            **kwargs}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_text_completion_has_litellms_price(litellm_spans, lm_server, unique, is_async):
    request = _ask(lm_server, unique)
    response = asyncio.run(litellm.atext_completion(**request)) if is_async else litellm.text_completion(**request)

    (span,) = litellm_spans()
    attributes = span.attributes
    assert span.name == "text_completion gpt-4o-mini"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(litellm.completion_cost(response), rel=1e-9)
    assert attributes[semconv.COST_SOURCE] == "litellm" and semconv.COST_UNKNOWN not in attributes
