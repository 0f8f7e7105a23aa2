"""Span attributes stored in the export thread (lmscope/telemetry/_attributes_on_export.py).

A span that goes only to lmscope's own processors carries none of lmscope's attributes while it runs: lmscope hands
them to its exporters, finished or, for captured content (`input.value`, `output.value`, both conventions'
messages, documents), as a builder over a copy taken at the call, run in the export worker. The same app runs twice
in fresh interpreters against the stand-in LM server, exporting to the trace file: once as is, once with a processor
of the app's own added to `Instrumentation.tracer_provider`, which makes lmscope set every attribute in the call so
that processor sees them. Every span must come out the same, and the scrub callback must have run in the export
thread in the first run and in the program's in the second: the work moved, the trace did not. The app changes its
lists after each call (a chat loop appending the answer to the messages it sent, `dspy.History` growing): the spans
must show what was sent.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading
import weakref
from pathlib import Path

import pytest
from app_env import app_env
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from test_providers import FakeGlobals

from lmscope._lm_server import StandInLM
from lmscope.telemetry._attributes_on_export import Later, reads_no_attributes, resolver, set_on_export
from lmscope.telemetry._batch_export import BatchExportProcessor
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._trace_file import read_trace_file
from lmscope.telemetry._tracer_provider import TracingSetup

FAKE_KEY = "sk-" + "a1b2c3d4" * 5
"""A credential-shaped string in the prompts: the scrub callback sees it, and says in which thread."""

_APP = textwrap.dedent('''
    import json, sys, threading
    config = json.loads(sys.argv[1])

    import dspy, litellm
    import lmscope
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    threads = []

    def callback(match):
        threads.append([match.path[0], threading.current_thread() is threading.main_thread()])
        return None

    inst = lmscope.instrument(exporters="file", file_path=config["file"], scrub_callback=callback)
    memory = InMemorySpanExporter()
    if config["app_processor"]:
        inst.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))

    key, base = config["key"], config["lm"]
    stops = ["###"]  # the app's own list of stop sequences, changed after the call
    lm = dspy.LM("openai/gpt-4o-mini", api_base=base, api_key="sk-test", cache=False, stop=stops)
    dspy.configure(lm=lm)
    history = dspy.History(messages=[{"question": "What is 2+2?", "answer": "4"}])
    chat = dspy.Predict("question, history: dspy.History -> answer")
    chat(question=f"My key is {key}. What is the capital of France?", history=history)
    history.messages.append({"question": "LATER QUESTION", "answer": "LATER ANSWER"})
    stops.append("LATER STOP")

    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Key {key}: name a colour."}]
    answer = litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="sk-test", messages=messages)
    messages.append({"role": "assistant", "content": answer.choices[0].message.content})
    messages[1]["content"] = "CHANGED AFTER THE CALL"
    stream = litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="sk-test", messages=messages,
                                stream=True, stream_options={"include_usage": True})
    for _chunk in stream:
        pass
    messages.append({"role": "user", "content": "APPENDED AFTER THE STREAM"})
    litellm.embedding(model="openai/text-embedding-3-small", api_base=base, api_key="sk-test",
                      input=["one text", "another"])

    # The demo's workload: a retriever's documents, DSPy's cache, dspy.context overrides, a threaded batch.
    from lmscope._demo import build_program, run_workload
    cached_lm = dspy.LM("openai/gpt-4o-mini", api_base=base, api_key="sk-test")
    dspy.configure(lm=cached_lm)
    run_workload(build_program(), cached_lm)

    class Keep(dspy.Module):  # passes on the very list it was given
        def forward(self, passages):
            return dspy.Prediction(kept=passages)

    passages = ["first passage"]
    Keep()(passages=passages)
    passages.append("LATER PASSAGE")
    inst.force_flush()
    seen = [dict(span.attributes) for span in memory.get_finished_spans()]
    print(json.dumps({"threads": threads, "app_processor_saw_input": [
        "input.value" in attributes for attributes in seen if "gen_ai.request.model" in attributes]}))
''')


def _run(tmp_path: Path, lm: StandInLM, *, app_processor: bool) -> tuple[list, dict]:
    trace_file = tmp_path / f"traces-{app_processor}.jsonl"
    config = {"file": str(trace_file), "lm": lm.base_url, "key": FAKE_KEY, "app_processor": app_processor}
    env = app_env("LMSCOPE_", "OTEL_", "OPENINFERENCE_")
    env.update({"DSPY_CACHEDIR": str(tmp_path / f"dspy-cache-{app_processor}"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    done = subprocess.run([sys.executable, "-c", _APP, json.dumps(config)], capture_output=True, env=env,
                          cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    return read_trace_file(trace_file), json.loads(done.stdout.decode().strip().splitlines()[-1])


def _comparable(records: list) -> list[tuple[str, dict]]:
    """Each span's name and attributes, in the order the spans started; durations and ids differ between runs."""
    timed = {"gen_ai.response.time_to_first_chunk", "gen_ai.response.id"}
    ordered = sorted(records, key=lambda record: record.start_ns)
    return [(record.name, {key: value for key, value in record.attributes.items() if key not in timed})
            for record in ordered]


def _as_text(span: tuple[str, dict]) -> str:
    return json.dumps(span, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[list, dict]]:
    tmp_path = tmp_path_factory.mktemp("attributes-on-export")
    results = {}
    for app_processor in (False, True):
        with StandInLM() as lm:  # a server each: its prompt cache would bill the second run's prefixes as cached
            results[app_processor] = _run(tmp_path, lm, app_processor=app_processor)
    return results


def test_spans_are_the_same_whether_attributes_are_stored_on_export_or_in_the_call(runs) -> None:
    on_export, in_call = (_comparable(runs[app_processor][0]) for app_processor in (False, True))
    assert [name for name, _ in on_export[:5]] == [
        "predict", "chat gpt-4o-mini", "chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    assert len(on_export) == len(in_call) > 30
    assert {"RETRIEVER", "CHAIN", "LLM"} <= {attributes["openinference.span.kind"] for _, attributes in on_export}
    # The batch's items run in threads, in no fixed order: compared as a whole.
    assert sorted(map(_as_text, on_export)) == sorted(map(_as_text, in_call))
    predict, dspy_lm, litellm_call, litellm_stream, embedding = (attributes for _, attributes in on_export[:5])
    for attributes in (predict, dspy_lm, litellm_call, litellm_stream, embedding):
        assert attributes["input.mime_type"] == "application/json"
    for attributes in (predict, dspy_lm, litellm_call):
        assert FAKE_KEY not in json.dumps(attributes) and attributes["lmscope.scrubbed"] is True
    assert "output.value" in dspy_lm and "gen_ai.output.messages" in litellm_stream
    assert json.loads(embedding["input.value"]) == ["one text", "another"]


def test_the_work_runs_in_the_export_thread_unless_an_app_processor_reads_the_spans(runs) -> None:
    on_export, in_call = runs[False][1], runs[True][1]
    content_keys = {"input.value", "gen_ai.input.messages", "llm.input_messages.1.message.content"}
    scrubbed_on_export = [on_main for key, on_main in on_export["threads"] if key in content_keys]
    scrubbed_in_call = [on_main for key, on_main in in_call["threads"] if key in content_keys]
    assert scrubbed_on_export and not any(scrubbed_on_export)  # every content scrub in the export worker
    assert scrubbed_in_call and all(scrubbed_in_call)  # on the program's thread, before the app's processor saw it
    saw = in_call["app_processor_saw_input"]  # every LM span, each with its input, at the app processor's on_end
    assert len(saw) > 10 and all(saw) and on_export["app_processor_saw_input"] == []


def test_spans_show_what_was_sent_not_what_the_program_changed_later(runs) -> None:
    for records, _ in runs.values():
        by_name = _comparable(records)
        predict, dspy_lm, litellm_call, litellm_stream = (attributes for _, attributes in by_name[:4])
        assert "LATER" not in predict["input.value"] and "LATER" not in dspy_lm["input.value"]
        assert tuple(dspy_lm["gen_ai.request.stop_sequences"]) == ("###",)
        sent = json.loads(litellm_call["input.value"])
        assert [message["role"] for message in sent] == ["system", "user"]
        assert sent[1]["content"] == "Key [REDACTED]: name a colour."
        streamed = json.loads(litellm_stream["input.value"])
        assert [message["role"] for message in streamed] == ["system", "user", "assistant"]
        assert streamed[1]["content"] == "CHANGED AFTER THE CALL"
        (keep,) = [attributes for name, attributes in by_name if name == "keep"]
        assert json.loads(keep["input.value"]) == {"passages": ["first passage"]}
        assert json.loads(keep["output.value"]) == {"kept": ["first passage"]}


# --- in the process: who builds, how often, and what a fault costs ---------------------------------------------

def _own_pipeline(*exporters: SpanExporter) -> tuple[TracingSetup, FakeGlobals, list[BatchExportProcessor]]:
    """lmscope's own provider with a batch processor per exporter, in a registry of the test's own."""
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    processors = [BatchExportProcessor(exporter) for exporter in exporters]
    return globals_.registry().setup(resolve_options(), processors), globals_, processors


def _flush(processors: list[BatchExportProcessor]) -> None:
    assert all(processor.force_flush() for processor in processors)


def test_every_exporter_gets_the_attributes_built_once_in_its_worker() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    setup, _, processors = _own_pipeline(first, second)
    tracer = setup.tracer("lmscope")
    assert resolver(tracer)()[1]
    builds: list[bool] = []

    def build() -> dict[str, object]:
        builds.append(threading.current_thread() is threading.main_thread())
        return {"input.value": "built", "lmscope.scrubbed": True}

    span = tracer.start_span("call", attributes={"kept": 1, "lmscope.scrubbed": False})
    set_on_export(span, build)
    span.end()
    _flush(processors)
    assert builds == [False]
    for exporter in (first, second):
        (exported,) = exporter.get_finished_spans()
        assert dict(exported.attributes) == {"kept": 1, "lmscope.scrubbed": True, "input.value": "built"}
    assert first.get_finished_spans()[0] is second.get_finished_spans()[0]


def test_a_failing_builder_costs_its_attributes_never_the_span(swallow_internal_errors: None,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    setup, _, processors = _own_pipeline(exporter)
    span = setup.tracer("lmscope").start_span("call", attributes={"kept": 1})
    set_on_export(span, lambda: {"input.value": str(1 / 0)})
    set_on_export(span, lambda: {"output.value": "answer"})
    span.end()
    _flush(processors)
    (exported,) = exporter.get_finished_spans()
    assert dict(exported.attributes) == {"kept": 1, "output.value": "answer"}
    assert "span attributes built on export" in caplog.text and "ZeroDivisionError" in caplog.text


def test_builders_values_and_faults_are_applied_in_call_order(swallow_internal_errors: None) -> None:
    """Builders of every length, finished values and values set on the span in between: a later value of a key wins,
    as in the call, and a builder that fails drops its own attributes only, not those handed over after it."""
    exporter = InMemorySpanExporter()
    setup, _, processors = _own_pipeline(exporter)
    span = setup.tracer("lmscope").start_span("call", attributes={"step": "start", "kept": 1})

    def named(*pairs: str) -> dict[str, str]:
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    set_on_export(span, Later((dict,)), Later((named, "step", "first", "a", "1")), {"b": "2"})
    span.set_attribute("step", "set on the span")
    set_on_export(span, Later((named, "c")), {}, Later((named, "step", "after the fault")))
    set_on_export(span, lambda: {"d": "4"}, Later((named, "step", "last", "e", "5", "f", "6")))
    span.end()
    _flush(processors)
    (exported,) = exporter.get_finished_spans()
    assert list(exported.attributes.items()) == [
        ("kept", 1), ("a", "1"), ("b", "2"), ("d", "4"), ("step", "last"), ("e", "5"), ("f", "6")]


def test_attributes_waiting_for_spans_nobody_exports_are_not_kept() -> None:
    setup, _, _ = _own_pipeline()  # no exporter: nothing reads the content, nothing may pile up
    tracer = setup.tracer("lmscope")
    spans = []
    for index in range(1_000):
        span = tracer.start_span(f"call {index}")
        set_on_export(span, lambda: {"input.value": "x" * 10_000})
        span.end()
        spans.append(weakref.ref(span))
    del span
    gc.collect()
    assert not [alive for alive in spans if alive() is not None]


def test_an_exported_child_holds_no_parent_span() -> None:
    """A span started inside another reads its parent's ids from it; once exported, it keeps them, not the parent."""
    exporter = InMemorySpanExporter()
    setup, _, processors = _own_pipeline(exporter)
    tracer = setup.tracer("lmscope")
    parent = tracer.start_span("parent")
    child = tracer.start_span("child", trace.set_span_in_context(parent))
    child.end()
    parent.end()
    _flush(processors)
    exported_child, exported_parent = exporter.get_finished_spans()
    assert exported_child.parent == exported_parent.context == parent.get_span_context()
    assert child.get_span_context() == exported_child.context
    released = weakref.ref(parent)
    del parent
    exporter.clear()
    gc.collect()
    assert released() is None and child.is_recording() is False


def test_attributes_are_set_in_the_call_where_anybody_else_may_read_the_span() -> None:
    setup, globals_, _ = _own_pipeline(InMemorySpanExporter())
    tracer = setup.tracer("lmscope")
    assert resolver(tracer)()[1]
    setup.tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))  # the app's, on ours
    assert not resolver(tracer)()[1]

    setup, globals_, _ = _own_pipeline(InMemorySpanExporter())
    tracer = setup.tracer("lmscope")
    assert resolver(tracer)()[1]
    setup2 = globals_.registry().setup(resolve_options(), [SimpleSpanProcessor(InMemorySpanExporter())])
    assert not resolver(setup2.tracer("lmscope"))()[1]  # a processor not of lmscope's kind among ours

    setup, globals_, _ = _own_pipeline(InMemorySpanExporter())
    tracer = setup.tracer("lmscope")
    app = TracerProvider()
    globals_.set(app)  # the app sets its provider: lmscope's spans go through it, where its processors see them
    assert not resolver(tracer)()[1]
    assert not resolver(trace.get_tracer("plain"))()[1]  # a tracer of anybody else's never defers


class _AttributeSampler(Sampler):
    """A sampler that decides by an attribute: it must see lmscope's attributes at the start."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):  # type: ignore[no-untyped-def]
        decision = Decision.RECORD_AND_SAMPLE if (attributes or {}).get("keep") else Decision.DROP
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return "by attribute"


@pytest.mark.parametrize(("sampler", "defers"), [
    (ALWAYS_ON, True), (ParentBased(ALWAYS_ON), True), (TraceIdRatioBased(0.5), True),
    (ParentBasedTraceIdRatio(0.5), True), (_AttributeSampler(), False)])
def test_only_samplers_that_read_no_attributes_let_them_wait(sampler: Sampler, defers: bool) -> None:
    assert reads_no_attributes(sampler) is defers


# --- edge cases: both ways the same, under tight limits and with the app changing what it sent -------------------

_EDGE_APP = textwrap.dedent('''
    import json, os, sys
    config = json.loads(sys.argv[1])
    import dspy, litellm, lmscope
    from dspy.dsp.utils import dotdict
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # Limits set after lmscope was imported (a .env loaded late): the provider built at instrument() applies them.
    os.environ.update(OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="30", OTEL_SPAN_EVENT_COUNT_LIMIT="1")
    inst = lmscope.instrument(exporters="file", file_path=config["file"])
    if config["app_processor"]:
        inst.tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    base = config["lm"]

    # Two failed requests before the answer: two retry events on the LM span, one kept by the event limit.
    lm = dspy.LM("openai/gpt-4o-mini", api_base=base, api_key="sk-x", cache=False, num_retries=3)
    dspy.configure(lm=lm)

    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.Predict("question -> answer")

        def forward(self, question):
            span = trace.get_current_span()  # the app writes keys lmscope also sets at the span's end
            span.set_attribute("output.value", "placeholder until the answer is known")
            span.set_attribute("lmscope.lm.calls", 0)
            return self.answer(question=question)

    QA()(question="retried?")

    class Search(dspy.Module):  # documents as DSPy's dotdicts and LangChain-style dicts, reranked in place after
        def forward(self, query):
            return dspy.Prediction(passages=[
                dotdict(long_text="Paris is the capital of France.", pid=7, score=12.5),
                {"page_content": "Lyon is in France.", "metadata": {"id": "doc-2", "score": 3.0}}])

    found = Search()(query="capital of France")
    found.passages[0].long_text, found.passages[0].score = "CHANGED AFTER THE CALL", 0.0
    found.passages[1]["metadata"]["id"] = "CHANGED-ID"

    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look a term up.",
              "parameters": {"type": "object", "properties": {"term": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "hello"}]
    first = litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="sk-x", messages=messages)
    answer = first.choices[0].message  # LiteLLM's Message object, sent back as is
    messages += [answer, {"role": "user", "content": "and again"}]
    litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="sk-x", messages=messages, tools=tools)
    answer.content = "EDITED AFTER THE CALL"
    tools[0]["function"]["description"] = "EDITED AFTER THE CALL"
    inst.force_flush()
''')


def _raw_spans(path: Path) -> list[str]:
    """Every span of an OTLP/JSON trace file, ids and times left out, as sorted JSON texts (dropped counts kept)."""
    spans: list[str] = []
    for line in path.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    kept = {key: value for key, value in span.items()
                            if key not in ("traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano",
                                           "events")}
                    kept["attributes"] = sorted((a["key"], json.dumps(a["value"])) for a in span["attributes"]
                                                if a["key"] not in ("gen_ai.response.id",))
                    kept["events"] = [event["name"] for event in span.get("events", [])]
                    spans.append(json.dumps(kept, sort_keys=True))
    return sorted(spans)


def test_edge_cases_come_out_the_same_both_ways(tmp_path: Path) -> None:
    """Limits set after import, the attribute count limit dropping the least recently set keys, an event dropped by
    its limit, keys the app set on lmscope's span that lmscope's end values overwrite, documents and a LiteLLM
    `Message` and tool schema the app changed after the call."""
    outputs = {}
    for app_processor in (False, True):
        trace_file = tmp_path / f"edge-{app_processor}.jsonl"
        with StandInLM() as lm:
            lm.transient_failures["gpt-4o-mini"] = [(503, "overloaded"), (503, "overloaded")]
            config = {"file": str(trace_file), "lm": lm.base_url, "app_processor": app_processor}
            env = app_env("LMSCOPE_", "OTEL_", "OPENINFERENCE_")
            env.update({"DSPY_CACHEDIR": str(tmp_path / f"cache-{app_processor}"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
            done = subprocess.run([sys.executable, "-c", _EDGE_APP, json.dumps(config)], capture_output=True, env=env,
                                  cwd=tmp_path, timeout=240)
        assert done.returncode == 0, done.stderr.decode()[-4000:]
        outputs[app_processor] = _raw_spans(trace_file)
    on_export, in_call = outputs[False], outputs[True]
    assert on_export == in_call
    text = "\n".join(on_export)
    assert "CHANGED" not in text and "EDITED AFTER" not in text and "placeholder" not in text
    assert '"droppedEventsCount": 1' in text and '"droppedAttributesCount"' in text  # the limits applied
