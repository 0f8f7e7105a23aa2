"""A text-completion LM (`dspy.LM(..., model_type="text")`) is a `text_completion {model}` LM span, with
`gen_ai.operation.name=text_completion` there and in the metrics: DSPy sends it to the legacy completions API
(docs/dspy-internals.md §4), which the stand-in server answers with the tokens it bills (a text prompt has no chat
framing). One span per call with LiteLLM instrumented too, tokens equal to the bill."""

from __future__ import annotations

import dspy
import pytest
from dspy_release import ENGINES, engine_options

from lmscope._lm_server import StandInLM
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track


@pytest.mark.parametrize("engine", ENGINES)
def test_a_text_lm_call_is_one_text_completion_span_with_the_servers_bill(dspy_and_litellm, tree, engine, unique):
    with StandInLM(model_answers={"answer": "Paris"}) as server:
        lm = dspy.LM("openai/gpt-4o-mini", model_type="text", api_base=server.base_url, api_key="sk-x",
                     cache=False, **engine_options(engine))
        with dspy.context(lm=lm), track() as usage:
            result = dspy.Predict("question -> answer")(question=f"What is the capital of France? {unique}")
        billed, sent = server.billed_chat_tokens, server.text_requests

    assert result.answer == "Paris"
    assert sent == 1
    finished = dspy_and_litellm()
    assert tree(finished) == [("predict", [("text_completion gpt-4o-mini", [])])]
    span = next(s for s in finished if s.name == "text_completion gpt-4o-mini")
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert (span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == billed
    assert usage.total()["calls"] == 1
    assert (usage.total()["input_tokens"], usage.total()["output_tokens"]) == billed


def test_the_metrics_name_the_text_completion_operation(metered, unique):
    _spans, reader = metered
    with StandInLM() as server:
        lm = dspy.LM("openai/gpt-4o-mini", model_type="text", api_base=server.base_url, api_key="sk-x", cache=False)
        lm(f"Say hi {unique}")
    data = reader.get_metrics_data()
    operations = {point.attributes.get(semconv.GEN_AI_OPERATION_NAME)
                  for resource in data.resource_metrics for scope in resource.scope_metrics
                  for metric in scope.metrics if metric.name == semconv.METRIC_TOKEN_USAGE
                  for point in metric.data.data_points}
    assert operations == {"text_completion"}
