"""The stand-in LM server, driven by real DSPy (native lm15 engine and LiteLLM engine) over HTTP on 127.0.0.1.

Token counts are checked against an independent recomputation: OpenAI's cookbook formula for chat
prompts, written out here with `count_tokens`, over the exact messages DSPy recorded in `lm.history`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Before dspy is imported anywhere: never fetch LiteLLM's remote price map; keep DSPy's disk cache private.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="lmscope-test-lm-server-"))

import dspy
import httpx
import pytest
from dspy.streaming import StreamListener, StreamResponse
from dspy_release import ENGINES, engine_options

from lmscope import _lm_server_tokens
from lmscope._lm_server import StandInLM, count_prompt_tokens, count_tokens
from lmscope._lm_server_prefix_cache import PrefixCache

BLOCK = 32
API_KEY = "sk-test-SECRET-never-stored"
CORPUS = [
    "Paris is the capital and largest city of France.",
    "The Seine flows through Paris before reaching the English Channel.",
    "Tokyo is the capital of Japan.",
]


# ---------------------------------------------------------------- helpers


def expected_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """OpenAI's recipe: 3 priming tokens + per message (3 framing + role + content)."""
    return 3 + sum(3 + count_tokens(m["role"]) + count_tokens(m["content"]) for m in messages)


def prompt_token_stream(messages: list[dict[str, Any]]) -> list[Any]:
    """The same prompt as a token sequence (framing as placeholders), for computing common prefixes."""
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")
    tokens: list[Any] = []
    for message in messages:
        tokens += ["<frame>"] * 3 + encoding.encode(message["role"]) + encoding.encode(message["content"])
    return tokens + ["<reply>"] * 3


def expected_cached_tokens(earlier: list[dict[str, Any]], later: list[dict[str, Any]], block: int = BLOCK) -> int:
    first, second = prompt_token_stream(earlier), prompt_token_stream(later)
    common = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))
    return common // block * block


def cached_tokens(usage: dict[str, Any]) -> int:
    details = usage["prompt_tokens_details"]
    return details["cached_tokens"] if isinstance(details, dict) else details.cached_tokens


def chat_body(content: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def sse_events(response: httpx.Response) -> list[Any]:
    """The `data:` payloads of an SSE response, JSON-decoded except the final [DONE]."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def server():
    with StandInLM(cache_block_tokens=BLOCK) as stand_in:
        yield stand_in


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def lm(server, engine):
    options = engine_options(engine)
    return dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key=API_KEY, cache=False, **options)


def engine_of(history_entry: dict[str, Any]) -> str:
    """Which DSPy engine produced a history entry (its response object comes from lm15 or from LiteLLM)."""
    return "litellm" if type(history_entry["response"]).__module__.startswith("litellm") else "native"


# ---------------------------------------------------------------- DSPy on both engines


def test_predict_parses_and_echoes_the_request(server, lm, engine):
    with dspy.context(lm=lm):
        prediction = dspy.Predict("question -> answer")(question="What is the capital of France?")
    entry = lm.history[-1]
    assert prediction.answer == "A stand-in answer to: What is the capital of France?"
    assert engine_of(entry) == engine
    assert entry["response_model"] == "gpt-4o-mini"  # both engines strip the "openai/" prefix on the wire
    assert server.requests == 1


def test_rag_steps_read_sensibly(server, lm):
    with dspy.context(lm=lm):
        query = dspy.Predict("question -> query")(question="Which river flows through Paris?").query
        answer = dspy.ChainOfThought("context: list[str], question -> answer")(
            context=CORPUS, question="Which river flows through Paris?")
    assert query == "river flows Paris"
    assert answer.answer == CORPUS[1]
    assert answer.reasoning == (f'The passage "{CORPUS[1]}" shares "flows", "paris" with the question, '
                                "so the answer is taken from it.")
    assert server.requests == 2


def test_token_counts_are_the_servers_count_of_what_dspy_sent(lm):
    with dspy.context(lm=lm):
        dspy.ChainOfThought("context: list[str], question -> answer")(context=CORPUS, question="Where is Tokyo?")
    entry = lm.history[-1]
    usage = entry["usage"]
    assert usage["prompt_tokens"] == expected_prompt_tokens(entry["messages"])
    assert usage["completion_tokens"] == count_tokens(entry["outputs"][0])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_prompt_cache_reports_the_shared_prefix_in_blocks(server, lm):
    predictor = dspy.ChainOfThought("context: list[str], question -> answer")
    with dspy.context(lm=lm):
        predictor(context=CORPUS, question="What is the capital of France?")
        predictor(context=CORPUS, question="Which river flows through Paris?")
    first, second = lm.history[-2], lm.history[-1]
    assert cached_tokens(first["usage"]) == 0
    expected = expected_cached_tokens(first["messages"], second["messages"])
    assert expected > 0 and expected % BLOCK == 0
    assert cached_tokens(second["usage"]) == expected

    server.reset_prefix_cache()
    with dspy.context(lm=lm):
        predictor(context=CORPUS, question="Which river flows through Paris?")
    assert cached_tokens(lm.history[-1]["usage"]) == 0


def test_json_adapter_gets_a_typed_json_object(lm):
    signature = "context: list[str], question -> answer, confidence: float, certain: bool, hops: int"
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(signature)(context=CORPUS, question="What is the capital of Japan?")
    assert (prediction.answer, prediction.confidence, prediction.certain, prediction.hops) == (CORPUS[2], 0.5, True, 1)
    assert json.loads(lm.history[-1]["outputs"][0]) == {"answer": CORPUS[2], "confidence": 0.5, "certain": True,
                                                        "hops": 1}


async def stream_predict(lm: dspy.LM, question: str, **settings: Any) -> tuple[list[str], Any]:
    """Run a streamified Predict; returns the answer's stream chunks and the final Prediction."""
    program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")])
    chunks, final = [], None
    with dspy.context(lm=lm, **settings):
        async for item in program(question=question):
            if isinstance(item, StreamResponse):
                chunks.append(item.chunk)
            elif isinstance(item, dspy.Prediction):
                final = item
    return chunks, final


def test_streamify_streams_the_answer_with_the_servers_usage(lm):
    asyncio.run(stream_predict(lm, "What is the capital of Japan?", track_usage=True))
    chunks, final = asyncio.run(stream_predict(lm, "What is the capital of France?", track_usage=True))
    first, second = lm.history[-2], lm.history[-1]
    assert final.answer == "A stand-in answer to: What is the capital of France?"
    assert "".join(chunks) == final.answer and len(chunks) > 1
    assert second["usage"]["prompt_tokens"] == expected_prompt_tokens(second["messages"])
    assert second["usage"]["completion_tokens"] == count_tokens(second["outputs"][0])
    assert cached_tokens(second["usage"]) == expected_cached_tokens(first["messages"], second["messages"]) > 0


def test_litellm_engine_streams_without_usage_unless_track_usage(server, monkeypatch):
    """A trap for tracers, pinned here: DSPy's LiteLLM engine asks for `stream_options.include_usage` only
    under `track_usage=True`; otherwise LiteLLM estimates the usage itself and cached tokens are lost.
    The server's framing is inflated here so its count and LiteLLM's estimate cannot coincide."""
    monkeypatch.setattr(_lm_server_tokens, "TOKENS_PER_MESSAGE", 10)
    lm = dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key=API_KEY, cache=False, **engine_options("litellm"))
    asyncio.run(stream_predict(lm, "Where is Tokyo?"))
    estimated = lm.history[-1]
    asyncio.run(stream_predict(lm, "Where is Tokyo?", track_usage=True))
    reported = lm.history[-1]
    assert estimated["usage"]["prompt_tokens"] == expected_prompt_tokens(estimated["messages"])  # LiteLLM's count
    assert estimated["usage"]["prompt_tokens_details"] is None
    assert reported["usage"]["prompt_tokens"] == expected_prompt_tokens(reported["messages"]) + 7 * 2  # the server's
    assert cached_tokens(reported["usage"]) == reported["usage"]["prompt_tokens"] // BLOCK * BLOCK


def test_model_answers_pin_field_values(engine):
    with StandInLM(model_answers={"answer": "forty-two", "confidence": "0.9"}) as pinned:
        options = engine_options(engine)
        pinned_lm = dspy.LM("openai/gpt-4o-mini", api_base=pinned.base_url, api_key=API_KEY, cache=False, **options)
        with dspy.context(lm=pinned_lm):
            chat = dspy.Predict("question -> answer, confidence: float")(question="Meaning of life?")
        with dspy.context(lm=pinned_lm, adapter=dspy.JSONAdapter()):
            json_reply = dspy.Predict("question -> answer, confidence: float")(question="Meaning of life?")
    assert (chat.answer, chat.confidence) == ("forty-two", 0.9)
    assert (json_reply.answer, json_reply.confidence) == ("forty-two", 0.9)


# ---------------------------------------------------------------- the wire, over raw HTTP


def test_completion_shape(server, http):
    before = int(time.time())
    body = http.post("/chat/completions", json=chat_body("Hello there", model="my-own-model")).json()
    text = "This is lmscope's stand-in LM. You said: Hello there"
    prompt_tokens = expected_prompt_tokens([{"role": "user", "content": "Hello there"}])
    assert body["id"].startswith("chatcmpl-") and len(body["id"]) > len("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", "my-own-model")
    assert before <= body["created"] <= int(time.time())
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"]["prompt_tokens"] == prompt_tokens
    assert body["usage"]["completion_tokens"] == count_tokens(text)
    assert body["usage"]["total_tokens"] == prompt_tokens + count_tokens(text)
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert http.get("/models").json()["data"] == [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "lmscope"},
        {"id": "my-own-model", "object": "model", "created": 0, "owned_by": "lmscope"}]


def test_identical_prompt_is_cached_up_to_its_last_whole_block_per_model(http):
    content = "Summarize the history of the Seine river in detail. " * 12
    first = http.post("/chat/completions", json=chat_body(content)).json()["usage"]
    again = http.post("/chat/completions", json=chat_body(content)).json()["usage"]
    other_model = http.post("/chat/completions", json=chat_body(content, model="gpt-4o")).json()["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert again["prompt_tokens_details"]["cached_tokens"] == first["prompt_tokens"] // BLOCK * BLOCK
    assert other_model["prompt_tokens_details"]["cached_tokens"] == 0  # caches are per model


def test_sse_stream_carries_the_text_and_a_usage_chunk(server, http):
    plain = http.post("/chat/completions", json=chat_body("Stream me")).json()
    server.reset_prefix_cache()
    request = chat_body("Stream me", stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/chat/completions", json=request) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = sse_events(response)
    chunks, done = events[:-1], events[-1]
    assert done == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == \
        plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["object"] == "chat.completion.chunk"

    with http.stream("POST", "/chat/completions", json=chat_body("Stream me", stream=True)) as response:
        assert all("usage" not in c for c in sse_events(response)[:-1])  # no include_usage, no usage chunk
    assert server.requests == 3


def test_a_stream_of_several_choices_names_each_ones_index_and_finish(http):
    request = chat_body("Stream me", n=2, stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/chat/completions", json=request) as response:
        chunks = sse_events(response)[:-1]
    plain = http.post("/chat/completions", json=chat_body("Stream me", n=2)).json()
    per_choice = {index: [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == index]
                  for index in (0, 1)}
    assert len(chunks) - 1 == len(per_choice[0]) + len(per_choice[1])  # every chunk but the usage one is a choice's
    for index, choices in per_choice.items():
        assert "".join(choice["delta"].get("content", "") for choice in choices) == \
            plain["choices"][index]["message"]["content"]
        assert [choice["finish_reason"] for choice in choices] == [None] * (len(choices) - 1) + ["stop"]
    assert chunks[-1]["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"] == \
        2 * count_tokens(plain["choices"][0]["message"]["content"])


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_an_answer_longer_than_max_tokens_is_cut_there_with_finish_reason_length(http, name, stream):
    full = http.post("/chat/completions", json=chat_body("Hello there")).json()["choices"][0]["message"]["content"]
    cut = _lm_server_tokens.decode(_lm_server_tokens.encode(full)[:5])
    request = chat_body("Hello there", n=2, **{name: 5})
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})
        with http.stream("POST", "/chat/completions", json=request) as response:
            chunks = sse_events(response)[:-1]
        texts = ["".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]
                         if c["choices"][0]["index"] == index) for index in (0, 1)]
        reasons = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]]
        usage = chunks[-1]["usage"]
    else:
        body = http.post("/chat/completions", json=request).json()
        texts = [choice["message"]["content"] for choice in body["choices"]]
        reasons = [choice["finish_reason"] for choice in body["choices"]]
        usage = body["usage"]
    assert (texts, reasons) == ([cut, cut], ["length", "length"])
    assert (cut, full.startswith(cut), len(full) > len(cut)) == ("This is lmscope", True, True)
    assert usage["completion_tokens"] == 10  # 5 a choice, as billed
    # A limit the answer fits in cuts nothing.
    roomy = http.post("/chat/completions", json=chat_body("Hello there", **{name: 500})).json()["choices"][0]
    assert (roomy["message"]["content"], roomy["finish_reason"]) == (full, "stop")


@pytest.mark.parametrize("limit", [0, -1, 2.5, "5", True])
def test_a_max_tokens_that_is_not_a_positive_integer_is_refused(server, http, limit):
    response = http.post("/chat/completions", json=chat_body("Hello there", max_tokens=limit))
    assert (response.status_code, response.json()["error"]["message"]) == (
        400, "'max_tokens' must be an integer of at least 1.")
    assert server.requests == 0


def test_a_prompt_longer_than_the_models_context_window_is_refused_as_openai_refuses_it(server, http):
    prompt = count_prompt_tokens([{"role": "user", "content": "Hello there"}])
    server.context_windows["gpt-4o"] = prompt - 1
    refused = http.post("/chat/completions", json=chat_body("Hello there", model="gpt-4o"))
    assert (refused.status_code, refused.json()["error"]) == (400, {
        "message": f"This model's maximum context length is {prompt - 1} tokens. However, your messages resulted in "
                   f"{prompt} tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"})
    assert (server.requests, server.failed_requests, server.billed_chat_tokens) == (0, 1, (0, 0))
    server.context_windows["gpt-4o"] = prompt  # a prompt that fits, and any other model, is answered
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert http.post("/chat/completions", json=chat_body("Hello there", model=model)).status_code == 200
    assert (server.requests, server.failed_requests) == (2, 1)


def test_json_object_request_without_schema(http):
    prompt = "[[ ## question ## ]]\nWhere is Paris?\n\nRespond with a JSON object in the following order of fields: " \
             "`query`, then `answer`."
    body = http.post("/chat/completions", json=chat_body(prompt, response_format={"type": "json_object"})).json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"query": "Paris",
                                                                     "answer": "A stand-in answer to: Where is Paris?"}


def test_errors_are_openai_shaped_and_keep_the_connection(server, http):
    malformed = http.post("/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    no_messages = http.post("/chat/completions", json={"model": "gpt-4o-mini"})
    unknown_post = http.post("/images/generations", json=chat_body("hi"))
    unknown_get = http.get("/nothing-here")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    assert malformed.json()["error"]["message"].startswith("We could not parse the JSON body")
    assert (no_messages.status_code, no_messages.json()["error"]["message"]) == (
        400, "'messages' must be a non-empty array of message objects.")
    assert (unknown_post.status_code, unknown_post.json()["error"]["code"]) == (404, "unknown_url")
    assert (unknown_get.status_code, unknown_get.json()["error"]["code"]) == (404, "unknown_url")
    assert server.requests == 0
    assert http.post("/chat/completions", json=chat_body("still there?")).status_code == 200
    assert server.requests == 1


def test_quiet_and_keeps_no_secrets(server, http, capfd):
    http.post("/chat/completions", json=chat_body("hello"))
    http.post("/chat/completions", content=b"{broken")
    http.get("/nowhere")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert API_KEY not in repr(vars(server)) and API_KEY not in repr(vars(server._httpd))


def test_concurrent_requests_are_all_counted(server):
    def ask(i: int) -> str:
        with httpx.Client(base_url=server.base_url) as client:
            return client.post("/chat/completions", json=chat_body(f"question {i}")).json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(ask, range(40)))
    assert len(set(ids)) == 40
    assert server.requests == 40


def test_keep_alive_calls_are_fast(http):
    """Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to every call."""
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        assert http.post("/chat/completions", json=chat_body("ping")).status_code == 200
        durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.02


# ---------------------------------------------------------------- tokenizer and prefix cache units


def test_missing_tiktoken_fails_at_construction_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes `import tiktoken` raise ImportError
    monkeypatch.setattr(_lm_server_tokens, "_encoding", None)
    with pytest.raises(_lm_server_tokens.TokenizerUnavailable, match="pip install tiktoken"):
        StandInLM()


@pytest.mark.parametrize("user_cache_dir", [False, True])
def test_tokenizer_loads_offline_without_importing_litellm(tmp_path, user_cache_dir):
    import importlib.util

    litellm_dir = next(iter(importlib.util.find_spec("litellm").submodule_search_locations))
    bundled = os.path.join(litellm_dir, "litellm_core_utils", "tokenizers")
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    expected_dir = bundled
    if user_cache_dir:  # a directory the user chose is kept as is
        for name in os.listdir(bundled):
            if os.path.isfile(os.path.join(bundled, name)):
                shutil.copy(os.path.join(bundled, name), tmp_path)
        env["TIKTOKEN_CACHE_DIR"] = expected_dir = str(tmp_path)
    script = ("import os, sys\nfrom lmscope._lm_server import count_tokens\n"
              "print(count_tokens('Hello, world!'), os.environ['TIKTOKEN_CACHE_DIR'], 'litellm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", expected_dir, "False"]


def test_prefix_cache_rounds_down_and_forgets_the_oldest():
    cache = PrefixCache(block_tokens=4, capacity=2)
    assert cache.lookup_and_remember("m", list(range(10))) == 0
    assert cache.lookup_and_remember("m", [*list(range(7)), 99, 99]) == 4  # common prefix 7 -> one block
    assert cache.lookup_and_remember("m", list(range(10))) == 8  # 10 -> two blocks
    assert cache.lookup_and_remember("other", list(range(10))) == 0
    cache.lookup_and_remember("m", [50] * 8)
    cache.lookup_and_remember("m", [60] * 8)  # capacity 2: both range(...) prompts are forgotten now
    assert cache.lookup_and_remember("m", list(range(10))) == 0
    assert cache.lookup_and_remember("m", [60] * 8) == 8
