"""Steps say what they are: a tool span carries the description and argument schema DSPy shows the LM, and an LM
call made by the adapter DSPy fell back to names that adapter."""

from __future__ import annotations

import json
from typing import Any

import dspy
import pytest
from dspy_release import ENGINES, engine_options, needs_dspy

from lmscope import semconv


def lookup_population(city: str, year: int = 2024) -> str:
    """Look up the population of a city in a given year."""
    return f"{city}: 2.1 million in {year}"


def test_a_tool_span_carries_the_tools_description_and_argument_schema(spans: Any) -> None:
    tool = dspy.Tool(lookup_population)
    assert tool(city="Paris") == "Paris: 2.1 million in 2024"
    step = next(span for span in spans() if span.name == "execute_tool lookup_population")
    shown_to_the_lm = tool.format_as_litellm_function_call()["function"]
    assert step.attributes[semconv.GEN_AI_TOOL_DESCRIPTION] == "Look up the population of a city in a given year."
    assert step.attributes[semconv.TOOL_DESCRIPTION] == shown_to_the_lm["description"]
    assert step.attributes[semconv.GEN_AI_TOOL_TYPE] == "function"
    parameters = json.loads(step.attributes[semconv.TOOL_PARAMETERS])
    assert parameters == shown_to_the_lm["parameters"]
    # DSPy < 3.4 lists `year` as required too, default and all: the span says what the LM is told.
    assert parameters["properties"] == {"city": {"type": "string"}, "year": {"type": "integer", "default": 2024}}


@pytest.mark.parametrize("engine", ENGINES)
@needs_dspy((3, 4), "the fallback behaviour these tests pin (JSONAdapter's retry ending in AdapterParseError)")
def test_the_lm_call_of_a_json_fallback_names_the_adapter_that_made_it(spans: Any, unique: str, engine: str) -> None:
    from dspy.utils.exceptions import AdapterParseError

    from lmscope._lm_server import StandInLM

    options = engine_options(engine)
    with StandInLM(model_answers={"count": "many"}) as server:  # neither adapter can parse "many" as an int
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-x", cache=False,
                                  **options))
        with pytest.raises(AdapterParseError):
            dspy.Predict("question -> count: int")(question=f"How many? {unique}")
    first, fallback = sorted((s for s in spans() if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)
    assert semconv.ADAPTER_NAME not in first.attributes
    assert fallback.attributes[semconv.ADAPTER_NAME] == "JSONAdapter"
    assert fallback.attributes[semconv.ADAPTER_FALLBACK_FROM] == "ChatAdapter"


def test_a_configured_json_adapter_is_not_labelled_a_fallback(spans: Any, make_lm: Any, unique: str) -> None:
    dspy.configure(lm=make_lm(), adapter=dspy.JSONAdapter())
    dspy.Predict("question -> answer")(question=f"What is the capital of France? {unique}")
    (call,) = [s for s in spans() if s.name == "chat gpt-4o-mini"]
    assert semconv.ADAPTER_NAME not in call.attributes
