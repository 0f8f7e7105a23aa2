"""Native tool calls a program runs itself (`dspy.ToolCalls.ToolCall.execute`) are TOOL spans, and run the very
function they run untraced: DSPy's lookup of a tool in the caller's frame finds the program's function, not
lmscope's (docs/dspy-internals.md §11). Against the stand-in tool-calling server (tests/tool_call_server.py) for
the LM's answer; the tools are the program's own functions."""

from __future__ import annotations

import json
import traceback
from typing import Any

import dspy
import pytest
from dspy_release import ENGINES, engine_options, needs_dspy
from opentelemetry.trace import StatusCode
from tool_call_server import ToolCallServer

from lmscope import semconv
from lmscope.instrumentation.dspy import DSPyInstrumentor


def get_weather(city: str) -> str:
    """The weather in a city (the module-level one)."""
    return f"global: sunny in {city}"


CALL_IDS = "id" in dspy.ToolCalls.ToolCall.model_fields
"""DSPy 3.3 and later keep the id the LM gave a tool call."""


def _tool_spans(finished: Any) -> list[Any]:
    return sorted((s for s in finished if s.attributes.get(semconv.SPAN_KIND) == semconv.KIND_TOOL),
                  key=lambda s: s.start_time)


@pytest.mark.parametrize("engine", ENGINES)
@needs_dspy((3, 1), "native function calling in ChatAdapter (use_native_function_calling)")
def test_a_programs_native_tool_calls_are_tool_spans_under_its_module(spans: Any, tree: Any, engine: str,
                                                                      unique: str) -> None:
    tools = [dspy.Tool(get_weather)]

    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.plan = dspy.Predict("question, tools: list[dspy.Tool] -> calls: dspy.ToolCalls")

        def forward(self, question: str) -> dspy.Prediction:
            calls = self.plan(question=question, tools=tools).calls
            return dspy.Prediction(results=[call.execute(functions=tools) for call in calls.tool_calls])

    with ToolCallServer() as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-x", cache=False,
                     **engine_options(engine))
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_native_function_calling=True)):
            result = Agent()(question=f"What is the weather in Paris and in Tokyo? {unique}")

    assert result.results == ["global: sunny in Paris", "global: sunny in Tokyo"]
    finished = spans()
    assert tree(finished) == [("agent", [("agent.plan", [("chat gpt-4o-mini", [])]),
                                         ("execute_tool get_weather", []), ("execute_tool get_weather", [])])]
    shown_to_the_lm = tools[0].format_as_litellm_function_call()["function"]
    for span, city in zip(_tool_spans(finished), ("Paris", "Tokyo"), strict=True):
        assert span.attributes.get(semconv.GEN_AI_TOOL_CALL_ID) == (f"call_{city.lower()}" if CALL_IDS else None)
        assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert span.attributes[semconv.GEN_AI_TOOL_NAME] == span.attributes[semconv.TOOL_NAME] == "get_weather"
        assert span.attributes[semconv.TOOL_DESCRIPTION] == shown_to_the_lm["description"]
        assert json.loads(span.attributes[semconv.TOOL_PARAMETERS]) == shown_to_the_lm["parameters"]
        assert json.loads(span.attributes[semconv.INPUT_VALUE]) == {"city": city}
        assert json.loads(span.attributes[semconv.OUTPUT_VALUE]) == f"global: sunny in {city}"
        assert semconv.MODULE_PATH not in span.attributes  # a step, as a dspy.Tool call is


def _run_with_a_local_tool() -> str:
    def get_weather(city: str) -> str:  # shadows the module-level one: DSPy's lookup finds this one first
        return f"local: rainy in {city}"

    return dspy.ToolCalls.ToolCall(name="get_weather", args={"city": "Oslo"}).execute()


def test_execute_without_functions_finds_the_callers_own_function_traced_as_untraced(spans: Any) -> None:
    assert _run_with_a_local_tool() == "local: rainy in Oslo"
    (span,) = _tool_spans(spans())
    assert span.attributes[semconv.LMSCOPE_PREFIX + "module.class"] == "ToolCall"
    assert json.loads(span.attributes[semconv.OUTPUT_VALUE]) == "local: rainy in Oslo"
    # and a module-level function, when the caller has no local of that name
    call = dspy.ToolCalls.ToolCall(name="get_weather", args={"city": "Rome"})
    assert call.execute() == "global: sunny in Rome"


def test_a_dict_of_dspy_tools_is_one_tool_span_the_tools_own(spans: Any) -> None:
    call = dspy.ToolCalls.ToolCall(name="get_weather", args={"city": "Lima"})
    assert call.execute(functions={"get_weather": dspy.Tool(get_weather)}) == "global: sunny in Lima"
    (span,) = _tool_spans(spans())
    assert span.attributes[semconv.LMSCOPE_PREFIX + "module.class"] == "Tool"  # dspy.Tool.__call__'s span


def _failures(functions: Any) -> tuple[BaseException, list[str]]:
    def broken(city: str) -> str:
        raise ConnectionError(f"no weather service for {city}")

    call = dspy.ToolCalls.ToolCall(name="broken", args={"city": "Quito"})
    with pytest.raises(Exception) as caught:
        call.execute(functions=functions)
    return caught.value, [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]


@pytest.mark.parametrize("shape", ["none", "missing"])
def test_errors_are_the_ones_dspy_raises_untraced_and_the_span_records_them(shape: str) -> None:
    """`none`: the function raises (DSPy's RuntimeError around it); `missing`: no such tool (DSPy's ValueError)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    functions = None if shape == "none" else {}
    untraced_error, untraced_frames = _failures(functions)
    memory, provider, instrumentor = InMemorySpanExporter(), TracerProvider(), DSPyInstrumentor()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor.instrument(tracer_provider=provider)
    try:
        traced_error, traced_frames = _failures(functions)
    finally:
        instrumentor.uninstrument()
    assert type(traced_error) is type(untraced_error)
    assert str(traced_error) == str(untraced_error)
    assert traced_frames == untraced_frames  # no frame of lmscope's in what the program gets
    (span,) = memory.get_finished_spans()
    assert span.name == "execute_tool broken"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == type(untraced_error).__name__
