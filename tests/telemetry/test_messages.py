"""Structured messages from OpenAI-format conversations DSPy's text adapters never send (native tool calls, tool
answers, several choices, reasoning), checked key by key: what Phoenix's chat view and a GenAI reader get.

The real-DSPy side (both engines, the stand-in server) is in tests/instrumentation/test_dspy_tree.py,
test_dspy_content_limits.py and test_dspy_scrubbing.py; the stand-in server answers no native tool calls, so the
shapes below are the ones LiteLLM hands DSPy (and DSPy hands back from `BaseLM.__call__`)."""

from __future__ import annotations

import json

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._content import ContentPolicy
from lmscope.telemetry._messages import input_message_attributes, output_message_attributes

OPENAI_KEY = "sk-proj-" + "Q1w2E3r4T5y6" * 3
WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}


def test_a_tool_calling_conversation_in_both_conventions():
    messages = [
        {"role": "system", "content": "You answer with tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Paris", "api_key": "' + OPENAI_KEY + '"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": "Sunny, 21 C"},
    ]
    attributes = input_message_attributes(messages, [WEATHER_TOOL], ContentPolicy())

    flat = {key.removeprefix("llm.input_messages."): value for key, value in attributes.items()
            if key.startswith("llm.input_messages.")}
    assert flat == {
        "0.message.role": "system", "0.message.content": "You answer with tools.",
        "1.message.role": "user", "1.message.content": "Weather in Paris?",
        "2.message.role": "assistant",
        "2.message.tool_calls.0.tool_call.id": "call_1",
        "2.message.tool_calls.0.tool_call.function.name": "weather",
        "2.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris", "api_key": "[REDACTED]"}',
        "3.message.role": "tool", "3.message.name": "weather", "3.message.tool_call_id": "call_1",
        "3.message.content": "Sunny, 21 C",
    }
    assert json.loads(attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "You answer with tools."}]
    assert json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "weather",
                                         "arguments": {"city": "Paris", "api_key": "[REDACTED]"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "Sunny, 21 C"}]},
    ]
    assert json.loads(attributes[f"{semconv.LLM_TOOLS}.0.tool.json_schema"]) == WEATHER_TOOL
    assert attributes[semconv.SCRUBBED] is True
    assert OPENAI_KEY not in json.dumps(attributes)
    assert messages[2]["tool_calls"][0]["function"]["arguments"].endswith(OPENAI_KEY + '"}')  # the caller's, untouched


def test_several_choices_with_reasoning_and_tool_calls():
    outputs = [
        {"text": "Paris.", "reasoning_content": "The capital is asked."},
        {"text": None, "tool_calls": [{"id": "call_9", "function": {"name": "weather", "arguments": "{broken"}}]},
    ]
    attributes = output_message_attributes(outputs, ("stop", "tool_calls"), ContentPolicy())

    assert attributes == {
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Paris.",
        "llm.output_messages.1.message.role": "assistant",
        "llm.output_messages.1.message.tool_calls.0.tool_call.id": "call_9",
        "llm.output_messages.1.message.tool_calls.0.tool_call.function.name": "weather",
        "llm.output_messages.1.message.tool_calls.0.tool_call.function.arguments": "{broken",
        semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps([
            {"role": "assistant", "parts": [{"type": "reasoning", "content": "The capital is asked."},
                                            {"type": "text", "content": "Paris."}], "finish_reason": "stop"},
            {"role": "assistant", "parts": [{"type": "tool_call", "name": "weather", "id": "call_9",
                                             "arguments": "{broken"}], "finish_reason": "tool_calls"},
        ], ensure_ascii=False),
    }


def test_a_long_conversation_stays_within_the_span_attribute_limit():
    """The SDK keeps 128 attributes a span and drops the oldest past that: the span kind and model would go first.
    Flattened keys stop at a budget; the JSON value holds the conversation, cut like any content."""
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(300)]
    attributes = input_message_attributes(messages, None, ContentPolicy(max_chars=100_000))

    flat = [key for key in attributes if key.startswith("llm.input_messages.")]
    assert len(flat) == 48
    assert flat[-1] == "llm.input_messages.23.message.content"
    chat = json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert len(chat) == 129 and chat[-1]["parts"][0]["content"] == "172 more not recorded"
    assert chat[127] == {"role": "user", "parts": [{"type": "text", "content": "turn 127"}]}


def test_values_are_cut_to_the_content_limit():
    long = "Paris " * 1000
    attributes = input_message_attributes([{"role": "user", "content": long}], None, ContentPolicy(max_chars=200))
    assert all(len(value) <= 200 for value in attributes.values() if isinstance(value, str))
    assert attributes["llm.input_messages.0.message.content"].endswith(" chars]")


def test_a_tool_call_whose_arguments_hold_themselves_is_recorded_as_text():
    """JSON has no cycles (`json.dumps` raises): the arguments are recorded as JSON of their text, and the rest of the
    message is still there."""
    arguments: dict[str, object] = {"city": "Paris"}
    arguments["self"] = arguments
    messages = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"name": "weather", "arguments": arguments}}]}]
    attributes = input_message_attributes(messages, None, ContentPolicy())
    prefix = f"{semconv.LLM_INPUT_MESSAGES}.0.message.tool_calls.0.tool_call."
    assert attributes[prefix + "function.name"] == "weather"
    assert attributes[prefix + "function.arguments"] == json.dumps(str(arguments))
    (message,) = json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert message["parts"][-1] == {"type": "tool_call", "name": "weather", "id": "call_1", "arguments": str(arguments)}
