"""The stand-in server's legacy completions route (`POST /v1/completions`), what a DSPy text LM calls: the text
prompt billed as its own tokens (no chat framing), every prompt of a list answered with `n` choices each, streamed
as `text` chunks with the usage chunk when asked, and a body that is not a completions request refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from lmscope._lm_server import count_tokens


def _events(response: httpx.Response) -> list[Any]:
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:])
            for line in response.iter_lines() if line.startswith("data: ")]


def test_a_prompt_is_billed_as_its_own_tokens_and_answered_as_a_chat_would_be(server, http):
    prompt = "Say hi to the stand-in"
    body = http.post("/completions", json={"model": "gpt-4o-mini", "prompt": prompt}).json()
    chat = http.post("/chat/completions", json={"model": "gpt-4o-mini",
                                                "messages": [{"role": "user", "content": prompt}]}).json()

    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    (choice,) = body["choices"]
    assert choice == {"text": chat["choices"][0]["message"]["content"], "index": 0, "logprobs": None,
                      "finish_reason": "stop"}
    assert body["usage"] == {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(choice["text"]),
                             "total_tokens": count_tokens(prompt) + count_tokens(choice["text"])}
    assert server.text_requests == 1 and server.requests == 1  # the chat call is the other count
    assert server.billed_chat_tokens == (body["usage"]["prompt_tokens"] + chat["usage"]["prompt_tokens"],
                                         body["usage"]["completion_tokens"] + chat["usage"]["completion_tokens"])


def test_a_list_of_prompts_gets_n_choices_each_numbered_across_them(http):
    prompts = ["first prompt", "second prompt here"]
    body = http.post("/completions", json={"model": "gpt-4o-mini", "prompt": prompts, "n": 2}).json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2, 3]
    texts = [choice["text"] for choice in body["choices"]]
    assert texts[0] == texts[1] and texts[2] == texts[3] and texts[0] != texts[2]
    assert body["usage"]["prompt_tokens"] == sum(count_tokens(prompt) for prompt in prompts)
    assert body["usage"]["completion_tokens"] == sum(count_tokens(text) for text in texts)


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-chunk", "no-usage-chunk"])
def test_a_stream_sends_the_text_in_chunks_then_its_finish(http, include_usage):
    request = {"model": "gpt-4o-mini", "prompt": "Stream me", "max_tokens": 5}
    plain = http.post("/completions", json=request).json()
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with http.stream("POST", "/completions", json={**request, "stream": True, **options}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = _events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
        chunks = chunks[:-1]
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == plain["choices"][0]["text"]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None] * (len(chunks) - 1) + ["length"]
    assert all(chunk["object"] == "text_completion" and "usage" not in chunk for chunk in chunks)


@pytest.mark.parametrize("body", [{"model": "gpt-4o-mini"}, {"model": "gpt-4o-mini", "prompt": [1, 2]},
                                  {"prompt": "hi"}, {"model": "gpt-4o-mini", "prompt": "hi", "n": 0}])
def test_a_body_that_is_not_a_completions_request_is_refused(server, http, body):
    response = http.post("/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert server.text_requests == 0
