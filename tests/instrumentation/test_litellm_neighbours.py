"""lmscope's LiteLLM instrumentation next to the other LiteLLM tracers, in either setup order, with real LiteLLM:
OpenInference's LiteLLM instrumentor and LiteLLM's own OpenTelemetry callback (`litellm.callbacks = ["otel"]`).

Each call is one lmscope span with lmscope's attributes, counted once by `track()`, lmscope's metrics, `lmscope
report` and the console tree, with the stand-in server's bill; lmscope names the other tool once in a warning; either
tool may leave first without taking the other along.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import litellm
import pytest
from dspy_release import engine_options
from memory_spans import memory_provider
from observed import token_sums

import lmscope.instrumentation._neighbours as shared_neighbours
from lmscope import semconv
from lmscope._demo_litellm import run_workload
from lmscope.telemetry._tree import is_lm_call
from lmscope.telemetry._usage import track

ORDERS = ["lmscope-first", "other-first"]
TRACED = ("completion", "acompletion", "text_completion", "atext_completion", "embedding", "aembedding")
WORKLOAD_SPANS = ["chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
OPENINFERENCE_SPANS = ["completion", "completion", "CreateEmbeddings"]
VARYING = {semconv.GEN_AI_RESPONSE_ID, semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}
"""lmscope attributes whose values differ from one run of the same call to the next."""


@pytest.fixture
def warnings_told(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """lmscope's warnings (`.messages`), as if none had been logged in this process before (once per process)."""
    monkeypatch.setattr(shared_neighbours, "_told", set())
    caplog.set_level(logging.WARNING, logger="lmscope")
    return caplog


def bill_of(server: Any, run: Any) -> dict[str, int]:
    """What the server billed while `run()` ran: chat prompt and completion tokens, embedding tokens, requests."""
    before = (server.requests, *server.billed_chat_tokens, server.embedding_requests, server.embedding_tokens)
    run()
    after = (server.requests, *server.billed_chat_tokens, server.embedding_requests, server.embedding_tokens)
    keys = ("chat_requests", "prompt", "completion", "embedding_requests", "embedding_tokens")
    return dict(zip(keys, (now - then for now, then in zip(after, before, strict=True)), strict=True))


def assert_counted_once(totals: dict[str, Any], bill: dict[str, int]) -> None:
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"], totals["unpriced_calls"]) == (
        bill["chat_requests"] + bill["embedding_requests"], bill["prompt"] + bill["embedding_tokens"],
        bill["completion"], 0)


def lmscope_alone(server: Any) -> list[dict[str, Any]]:
    """The attributes lmscope alone gives the workload's three spans: what it must still give next to another tool."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    provider, exporter = memory_provider()
    ours = LiteLLMInstrumentor()
    ours.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    try:
        run_workload(server.base_url, "sk-test")
    finally:
        ours.uninstrument()
    return [dict(span.attributes) for span in exporter.get_finished_spans()]


def assert_intact(ours: list[dict[str, Any]], alone: list[dict[str, Any]]) -> None:
    """Every attribute lmscope alone writes, with the same value, and nothing else."""
    assert len(ours) == len(alone)
    for attributes, reference in zip(ours, alone, strict=True):
        assert attributes.keys() == reference.keys()
        assert {k: v for k, v in attributes.items() if k not in VARYING} == {
            k: v for k, v in reference.items() if k not in VARYING}


# --- OpenInference's LiteLLM instrumentor, in this process --------------------------------------------------------


@pytest.mark.parametrize("leaves", ["openinference", "lmscope"])
@pytest.mark.parametrize("order", ORDERS)
def test_next_to_openinference_litellm(order: str, leaves: str, lm_server: Any,
                                       warnings_told: pytest.LogCaptureFixture) -> None:
    """OpenInference's span encloses lmscope's in both orders (lmscope goes beneath OpenInference's patch); lmscope's
    spans keep their attributes, `track()` and lmscope's metrics equal the bill; OpenInference's `uninstrument()`
    leaves lmscope tracing whichever came first, and lmscope's leaves OpenInference over LiteLLM's own functions."""
    from openinference.instrumentation.litellm import LiteLLMInstrumentor as OpenInferenceLiteLLM
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor
    from lmscope.telemetry._metrics import MetricsRecorder

    alone = lmscope_alone(lm_server)
    own = {name: getattr(litellm, name) for name in TRACED}
    provider, exporter = memory_provider()
    reader = InMemoryMetricReader()
    recorder = MetricsRecorder(MeterProvider(metric_readers=[reader]).get_meter("lmscope"))
    ours, theirs = LiteLLMInstrumentor(), OpenInferenceLiteLLM()
    steps = [lambda: ours.instrument(tracer=provider.get_tracer("test"), capture_content=True,
                                     lm_call_listeners=[recorder.record_lm_call]),
             lambda: theirs.instrument(tracer_provider=provider)]
    for step in steps if order == "lmscope-first" else steps[::-1]:
        step()
    try:
        with track() as usage:
            bill = bill_of(lm_server, lambda: run_workload(lm_server.base_url, "sk-test"))
        spans = exporter.get_finished_spans()
        mine = [span for span in spans if is_lm_call(span.attributes)]
        assert [span.name for span in mine] == WORKLOAD_SPANS
        enclosing = {span.context.span_id: span for span in spans if not is_lm_call(span.attributes)}
        # One span of OpenInference's per call, the parent of lmscope's: the same tree in both orders.
        assert [enclosing[span.parent.span_id].name for span in mine] == OPENINFERENCE_SPANS
        assert len(spans) == 6 and all(span.parent is None for span in enclosing.values())
        assert_intact([dict(span.attributes) for span in mine], alone)
        assert_counted_once(usage.total(), bill)
        assert token_sums(reader) == {"input": bill["prompt"] + bill["embedding_tokens"],
                                         "output": bill["completion"]}
        [warning] = [message for message in warnings_told.messages if "LiteLLM" in message]
        assert "OpenInference's LiteLLM instrumentor" in warning and "LiteLLMInstrumentor().uninstrument()" in warning

        exporter.clear()
        (theirs if leaves == "openinference" else ours).uninstrument()
        run_workload(lm_server.base_url, "sk-test")
        names = [span.name for span in exporter.get_finished_spans()]
        if leaves == "openinference":
            assert names == WORKLOAD_SPANS
        else:  # OpenInference stays, over LiteLLM's own functions
            assert names == OPENINFERENCE_SPANS
            wrapped = [name for name in TRACED if name in theirs.original_litellm_funcs]
            assert len(wrapped) == 4 and all(getattr(litellm, name).__self__ is theirs for name in wrapped)
            assert {name: theirs.original_litellm_funcs[name] for name in wrapped} == {name: own[name] for name in wrapped}
    finally:
        for instrumentor in (theirs, ours):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
    assert {name: getattr(litellm, name) for name in TRACED} == own  # put back exactly


# --- LiteLLM's own OpenTelemetry callback, in this process (its TracerProvider injected, as its tests do) ----------


@pytest.fixture
def litellm_otel_callback() -> Any:
    """A function registering LiteLLM's `OpenTelemetry` callback on a TracerProvider of its own (LiteLLM's exporter);
    returns that provider's exporter. LiteLLM's callback lists are put back afterwards."""
    from litellm.integrations.opentelemetry import OpenTelemetry

    lists = ("callbacks", "success_callback", "_async_success_callback", "failure_callback",
             "_async_failure_callback")
    saved = {name: list(getattr(litellm, name)) for name in lists}
    # LiteLLM's async logging worker is global: callbacks an earlier test's event loop left queued (failed calls
    # log late) would run on this test's loop and reach this callback. Run them now, before it is registered.
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    asyncio.run(GLOBAL_LOGGING_WORKER.flush())

    def register() -> Any:
        provider, exporter = memory_provider()
        litellm.callbacks = [OpenTelemetry(tracer_provider=provider)]
        return exporter

    yield register
    for name, value in saved.items():
        setattr(litellm, name, value)


def wait_for(count: int, exporter: Any) -> list[Any]:
    """LiteLLM logs a call from a worker thread, a moment after the call returned."""
    import time

    deadline = time.monotonic() + 10
    while len(exporter.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # and nothing more comes
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("order", ORDERS)
def test_next_to_litellms_otel_callback_lmscope_spans_keep_their_attributes(
        order: str, lm_server: Any, litellm_otel_callback: Any, warnings_told: pytest.LogCaptureFixture) -> None:
    """LiteLLM's callback finds lmscope's span current: it writes nothing on it (it would put ~100 attributes and its
    status there, from a worker thread, before or after lmscope ended the span) and hangs its `raw_gen_ai_request`
    spans under it. A stream's end it logs from a worker thread without the caller's context: a `litellm_request`
    trace of its own, in LiteLLM's exporter only."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    alone = lmscope_alone(lm_server)
    provider, exporter = memory_provider()
    ours = LiteLLMInstrumentor()
    theirs: Any = None
    if order == "other-first":
        theirs = litellm_otel_callback()
    ours.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    try:
        if order == "lmscope-first":
            theirs = litellm_otel_callback()
        with track() as usage:
            bill = bill_of(lm_server, lambda: run_workload(lm_server.base_url, "sk-test"))
        logged = wait_for(4, theirs)
    finally:
        ours.uninstrument()
    mine = exporter.get_finished_spans()
    assert [span.name for span in mine] == WORKLOAD_SPANS
    assert_intact([dict(span.attributes) for span in mine], alone)
    assert_counted_once(usage.total(), bill)
    parents = {span.context.span_id: span.name for span in [*mine, *logged]}
    assert sorted((span.name, parents.get(span.parent.span_id) if span.parent else None) for span in logged) == [
        ("litellm_request", None), ("raw_gen_ai_request", "chat gpt-4o-mini"),
        ("raw_gen_ai_request", "embeddings text-embedding-3-small"), ("raw_gen_ai_request", "litellm_request")]
    stream_call = next(span for span in logged if span.name == "litellm_request")
    assert stream_call.attributes["gen_ai.usage.input_tokens"] == mine[1].attributes[
        semconv.GEN_AI_USAGE_INPUT_TOKENS]  # the same call, in LiteLLM's exporter
    [warning] = [message for message in warnings_told.messages if "LiteLLM" in message]
    assert "LiteLLM's OpenTelemetry callback" in warning and 'remove "otel" from litellm.callbacks' in warning
    assert not [message for message in warnings_told.messages if "ended span" in message]


def test_next_to_litellms_otel_callback_a_dspy_lm_span_keeps_its_attributes(
        lm_server: Any, litellm_otel_callback: Any, spans: Any, unique: str) -> None:
    """DSPy's `engine="litellm"` LM span is the current span while LiteLLM runs: LiteLLM's callback leaves it alone."""
    import dspy

    logged_to = litellm_otel_callback()
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-test", **engine_options("litellm"), cache=False)
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question=f"Capital of France? {unique}")
    logged = wait_for(1, logged_to)
    predict, = [span for span in spans() if span.name == "predict"]
    call, = [span for span in spans() if span.name == "chat gpt-4o-mini"]
    assert [(span.name, span.parent.span_id) for span in logged] == [("raw_gen_ai_request", call.context.span_id)]
    assert not [key for key in call.attributes if key.startswith(("metadata.", "gen_ai.cost.", "litellm."))]
    assert not [key for key in predict.attributes if key.startswith("gen_ai.")]


# --- LiteLLM's own OpenTelemetry callback as an app sets it up: its global provider, OTLP, in a process of its own -


APP = Path(__file__).with_name("litellm_otel_app.py")
ROOT = Path(__file__).resolve().parents[2]


@cache
def run_otel_app(order: str, endpoint: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": endpoint}
    done = subprocess.run([sys.executable, str(APP), order], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.slow
@pytest.mark.parametrize("order", ["first", "after"])
def test_litellm_otel_callback_as_an_app_sets_it_up(order: str, receiver: Any) -> None:
    """`litellm.callbacks = ["otel"]` before or after `lmscope.instrument()`, exporting over OTLP (OTEL_EXPORTER):
    LiteLLM sets up the global TracerProvider at its first call, and lmscope's spans follow it from the next one.

    lmscope's file, console tree, report, `track()` and metrics: the three calls once each, with the server's bill.
    LiteLLM's exporter: its `raw_gen_ai_request` spans under lmscope's spans, the stream's too (LiteLLM logs a sync
    stream's end on its thread pool, which runs in the submitting context under `lmscope.instrument()`: no second
    `litellm_request` trace), and lmscope's spans from the second call on (started after LiteLLM set its provider
    up), the same as in the file.
    """
    result = run_otel_app(order, receiver.url + "/v1/traces")
    bill = result["bill"]
    assert (bill["chat_requests"], bill["embedding_requests"]) == (2, 1)
    assert_counted_once(result["track"], bill)
    assert result["report"] == {"calls": 3, "input_tokens": bill["prompt"] + bill["embedding_tokens"],
                                "output_tokens": bill["completion"], "unpriced": 0}
    assert result["metrics"] == {"input": bill["prompt"] + bill["embedding_tokens"], "output": bill["completion"]}
    file_spans = result["spans"]
    assert [span["name"] for span in file_spans] == WORKLOAD_SPANS and all(s["parent"] is None for s in file_spans)
    alone = [span["attributes"] for span in run_otel_app("alone", "")["spans"]]
    assert_intact([span["attributes"] for span in file_spans], alone)
    # The console tree (stderr): one tree per call, with the tokens the file has.
    tree = [line.split("  ")[0] for line in result["stderr"].splitlines() if line.startswith(("chat", "embeddings"))]
    assert tree == WORKLOAD_SPANS
    [warning] = [message for message in result["warnings"] if "LiteLLM" in message]
    assert 'remove "otel" from litellm.callbacks' in warning
    assert not [message for message in result["warnings"] if "ended span" in message]

    received = receiver.records()
    ours = {span["span_id"]: span for span in file_spans}
    theirs = {record.span_id: record for record in received}
    first, stream, embedding = file_spans
    assert sorted((r.name, ours[r.parent_span_id]["name"] if r.parent_span_id in ours else
                   theirs[r.parent_span_id].name if r.parent_span_id else None) for r in received) == [
        ("chat gpt-4o-mini", None), ("embeddings text-embedding-3-small", None),
        ("raw_gen_ai_request", "chat gpt-4o-mini"), ("raw_gen_ai_request", "chat gpt-4o-mini"),
        ("raw_gen_ai_request", "embeddings text-embedding-3-small")]
    assert first["span_id"] not in theirs  # started before LiteLLM set the global provider up
    for span in (stream, embedding):  # the same spans, attributes and all
        assert json.loads(json.dumps(dict(theirs[span["span_id"]].attributes))) == span["attributes"]


def test_next_to_litellms_otel_callback_async_calls_and_streams(lm_server: Any, litellm_otel_callback: Any,
                                                                 warnings_told: pytest.LogCaptureFixture) -> None:
    """Async, LiteLLM logs from a task that copied the caller's context: inside lmscope's span for `acompletion`, and
    inside the stream's last chunk read for a stream (lmscope runs LiteLLM's chunk reads in the call's context), so
    both calls' LiteLLM spans hang under lmscope's and nothing is written on lmscope's."""

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    provider, exporter = memory_provider()
    ours = LiteLLMInstrumentor()
    ours.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    logged_to = litellm_otel_callback()
    ask = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Capital of France?"}],
           "api_base": lm_server.base_url, "api_key": "sk-test"}

    async def main() -> str:
        await litellm.acompletion(**ask)
        stream = await litellm.acompletion(**ask, stream=True, stream_options={"include_usage": True})
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    try:
        with track() as usage:
            bill = bill_of(lm_server, lambda: asyncio.run(main()))
        logged = wait_for(2, logged_to)
    finally:
        ours.uninstrument()
    mine = exporter.get_finished_spans()
    assert [span.name for span in mine] == ["chat gpt-4o-mini"] * 2
    assert_counted_once(usage.total(), {**bill, "embedding_requests": 0, "embedding_tokens": 0})
    assert sorted(span.parent.span_id for span in logged) == sorted(span.context.span_id for span in mine)
    assert [span.name for span in logged] == ["raw_gen_ai_request"] * 2
    assert not [key for span in mine for key in span.attributes if key.startswith(("metadata.", "gen_ai.cost."))]
    assert not [message for message in warnings_told.messages if "ended span" in message]
