"""Tool calls in a LiteLLM chat answer (tests/tool_call_server.py): the span of a stream carries them as the span of
the same call not streamed does, and without a usage chunk its tokens are what LiteLLM counts of the answer it
assembles from the chunks."""

from __future__ import annotations

import json

import litellm
import pytest
from tool_call_server import CALLS, TEXT, USAGE, ToolCallServer

from lmscope.telemetry import _semconv as semconv

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris and in Tokyo?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
_OUTPUTS = (semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, semconv.LLM_OUTPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES,
            semconv.GEN_AI_RESPONSE_FINISH_REASONS)


@pytest.fixture(scope="module")
def tool_server():
    with ToolCallServer() as server:
        yield server


def _request(server, **kwargs):
    return {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "api_base": server.base_url, "api_key": "sk-anything",
            **kwargs}


def _outputs(span):
    return {key: value for key, value in span.attributes.items() if key.startswith(_OUTPUTS)}


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-chunk", "no-usage-chunk"])
def test_a_streamed_answers_tool_calls_are_on_its_span_as_when_not_streamed(litellm_spans, tool_server,
                                                                           include_usage):
    response = litellm.completion(**_request(tool_server))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(litellm.completion(**_request(tool_server, stream=True, **extra)))

    not_streamed, streamed = litellm_spans()
    assert len(response.choices[0].message.tool_calls) == len(CALLS)
    assert json.loads(streamed.attributes[semconv.OUTPUT_VALUE]) == [{"text": TEXT, "tool_calls": [
        {"id": call_id, "function": {"name": name, "arguments": arguments}} for call_id, name, arguments in CALLS]}]
    assert _outputs(streamed) == _outputs(not_streamed)
    tokens = (streamed.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
              streamed.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
    if include_usage:
        assert tokens == (USAGE["prompt_tokens"], USAGE["completion_tokens"])
    else:
        assembled = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
        assert tokens == (assembled.usage.prompt_tokens, assembled.usage.completion_tokens)
        assert streamed.attributes[semconv.USAGE_ESTIMATED] is True


_INPUT_MESSAGES = (semconv.LLM_INPUT_MESSAGES, semconv.GEN_AI_INPUT_MESSAGES)


def test_an_assistant_message_passed_back_as_litellms_object_is_in_the_input_messages(litellm_spans, tool_server):
    """LiteLLM's tool-calling loop appends the answer's `Message` object itself to the conversation (not a dict): the
    next call's span lists that assistant turn, its tool calls included, as it lists the same turn given as a dict."""
    message = litellm.completion(**_request(tool_server)).choices[0].message
    answers = [{"role": "tool", "tool_call_id": call.id, "content": "sunny"} for call in message.tool_calls]
    litellm.completion(**_request(tool_server, messages=[*MESSAGES, message, *answers]))
    litellm.completion(**_request(tool_server, messages=[*MESSAGES, message.model_dump(), *answers]))

    _first, with_object, with_dict = litellm_spans()
    listed = {key: value for key, value in with_object.attributes.items() if key.startswith(_INPUT_MESSAGES)}
    assert listed == {key: value for key, value in with_dict.attributes.items() if key.startswith(_INPUT_MESSAGES)}
    assert json.loads(listed[semconv.GEN_AI_INPUT_MESSAGES])[1] == {"role": "assistant", "parts": [
        {"type": "text", "content": TEXT},
        *({"type": "tool_call", "name": name, "id": call_id, "arguments": json.loads(arguments)}
          for call_id, name, arguments in CALLS)]}
    assert listed[f"{semconv.LLM_INPUT_MESSAGES}.1.message.role"] == "assistant"
