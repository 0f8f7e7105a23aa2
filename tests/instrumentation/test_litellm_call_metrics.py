"""Metrics of plain LiteLLM calls: a request the provider refused has a duration with its `error.type`, and no
token points. Its usage is unknown, not 0: LiteLLM's failures used to add a 0 to `gen_ai.client.token.usage` (count
and sum), as DSPy's failures never did, so a dashboard's tokens-per-call fell with every error."""

from __future__ import annotations

from typing import Any

import litellm
import pytest

from lmscope.instrumentation.litellm import LiteLLMInstrumentor
from lmscope.telemetry._metrics import MetricsRecorder

TOKENS, DURATION = "gen_ai.client.token.usage", "gen_ai.client.operation.duration"


@pytest.fixture
def metered_litellm() -> Any:
    from memory_spans import memory_provider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    provider, _ = memory_provider()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True,
                            lm_call_listeners=[MetricsRecorder(meters.get_meter("lmscope")).record_lm_call])
    yield reader
    instrumentor.uninstrument()
    meters.shutdown()


def test_a_refused_request_has_a_duration_and_no_token_points(metered_litellm: Any, lm_server: Any, unique: str,
                                                             metric_series: Any) -> None:
    lm_server.failures["refusing-model"] = (400, "This request is not allowed.")
    asked = {"api_base": lm_server.base_url, "api_key": "sk-anything", "num_retries": 0,
             "messages": [{"role": "user", "content": f"Capital of France? {unique}"}]}
    try:
        with pytest.raises(litellm.BadRequestError):
            litellm.completion(model="openai/refusing-model", **asked)
    finally:
        del lm_server.failures["refusing-model"]
    answered = litellm.completion(model="openai/gpt-4o-mini", **asked)
    series = metric_series(metered_litellm)
    durations = {dict(key).get("error.type"): value[0] for key, value in series[DURATION].items()}
    assert durations == {"BadRequestError": 1, None: 1}
    tokens = {(dict(key)["gen_ai.request.model"], dict(key)["gen_ai.token.type"]): value
              for key, value in series[TOKENS].items()}
    assert tokens == {("gpt-4o-mini", "input"): (1, answered.usage.prompt_tokens),
                      ("gpt-4o-mini", "output"): (1, answered.usage.completion_tokens)}
