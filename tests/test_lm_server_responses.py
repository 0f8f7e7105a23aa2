"""The stand-in server's /v1/responses: OpenAI's Responses API wire shape (JSON and SSE), the chat rules' token
counts, planted failures, and LiteLLM's `responses` reaching it."""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="lmscope-dspy-cache-"))

import litellm

from lmscope._lm_server import count_prompt_tokens, count_tokens

QUESTION = "What is the capital of France?"
AS_CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]


def _events(response):
    """(event name, data) of each SSE event."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: "):])))
    return events


def test_response_shape_and_token_counts(server, http):
    body = http.post("/responses", json={"model": "gpt-4o-mini", "instructions": "Be brief.", "input": QUESTION,
                                         "temperature": 0.2}).json()
    text = body["output"][0]["content"][0]["text"]
    assert (body["object"], body["status"], body["model"], body["temperature"]) == (
        "response", "completed", "gpt-4o-mini", 0.2)
    assert body["id"].startswith("resp_") and body["output"][0]["id"].startswith("msg_")
    assert (body["output"][0]["type"], body["output"][0]["role"]) == ("message", "assistant")
    assert text == f"This is lmscope's stand-in LM. You said: {QUESTION}"
    prompt = count_prompt_tokens(AS_CHAT)  # the same request sent as chat messages is counted alike
    assert body["usage"] == {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens": count_tokens(text), "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": prompt + count_tokens(text)}
    chat = http.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": AS_CHAT}).json()
    assert chat["usage"]["prompt_tokens"] == prompt
    assert (server.responses_requests, server.requests) == (1, 1)  # counted apart


def test_message_items_and_text_parts_read_as_chat(http):
    body = http.post("/responses", json={"model": "gpt-4o-mini", "input": [
        {"type": "message", "role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]}).json()
    assert body["usage"]["input_tokens"] == count_prompt_tokens(
        [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": QUESTION}])


def test_stream_events_carry_the_text_and_the_usage(server, http):
    with http.stream("POST", "/responses", json={"model": "gpt-4o-mini", "input": QUESTION,
                                                  "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = _events(response)
    names = [name for name, _ in events]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert all(data["type"] == name for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert len([name for name in names if name == "response.output_text.delta"]) > 1
    final = events[-1][1]["response"]
    assert events[0][1]["response"]["usage"] is None and final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["input_tokens"] == count_prompt_tokens([{"role": "user", "content": QUESTION}])
    assert final["usage"]["output_tokens"] == count_tokens(text)
    assert server.responses_requests == 1


def test_bad_requests_and_planted_failures(server, http):
    tool_output = http.post("/responses", json={"model": "gpt-4o-mini", "input": [
        {"type": "function_call_output", "call_id": "c1", "output": "42"}]})
    assert tool_output.status_code == 400 and "'message'" in tool_output.json()["error"]["message"]
    assert http.post("/responses", json={"model": "gpt-4o-mini", "input": ""}).status_code == 400

    server.transient_failures["gpt-4o-mini"] = [(503, "overloaded"), (500, "oops")]
    statuses = [http.post("/responses", json={"model": "gpt-4o-mini", "input": "hi"}).status_code for _ in range(3)]
    assert statuses == [503, 500, 200]  # each planted error answers one request, in order, then it answers again
    assert server.transient_failures["gpt-4o-mini"] == []
    assert (server.failed_requests, server.responses_requests) == (2, 1)


def test_litellm_responses_reaches_the_server_natively(server):
    """`openai/` models go to /v1/responses as they are (no bridge through /v1/chat/completions)."""
    server.recorded_bodies = []
    response = litellm.responses(model="openai/gpt-4o-mini", input=QUESTION, instructions="Be brief.",
                                 api_base=server.base_url, api_key="sk-anything", max_output_tokens=100)
    assert (server.responses_requests, server.requests) == (1, 0)
    assert server.received == [{"model": "gpt-4o-mini", "input": QUESTION, "instructions": "Be brief.",
                                "max_output_tokens": 100}]
    assert response.usage.input_tokens == count_prompt_tokens(AS_CHAT)
    assert response.output[0].content[0].text == f"This is lmscope's stand-in LM. You said: {QUESTION}"
