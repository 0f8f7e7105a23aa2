"""A span lmscope records for its own exporters (`lmscope/telemetry/_recorded_span.py`) is exported as the span the
SDK would have made: the same app code run on the recorder and on the SDK's tracer gives the same exported spans.

Each test runs one script of span operations twice, on lmscope's own provider in a registry of the test's own: once
as lmscope runs alone (the recorder makes the spans) and once with a processor of the app's added to that provider
(the SDK makes them, as it then must: the app's processor sees them). Ids and clock times differ between the runs
and are compared by position; everything an exporter reads is compared as is, dropped counts included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from test_providers import FakeGlobals

from lmscope.telemetry._attributes_on_export import resolver, set_on_export
from lmscope.telemetry._batch_export import BatchExportProcessor
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._recorded_span import RecordedSpan

Script = Callable[[trace.Tracer], None]
_REMOTE = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
                      trace_state=TraceState([("vendor", "value")]))
_REMOTE_UNSAMPLED = SpanContext(0x4321, 0x8765, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))


class _Counter:
    """An object the app sets as a value, then changes."""

    def __init__(self) -> None:
        self.n = 0

    def __str__(self) -> str:
        return f"n={self.n}"


def _exported(script: Script, *, recorded: bool) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    processor = BatchExportProcessor(exporter)
    setup = FakeGlobals(trace.ProxyTracerProvider()).registry().setup(resolve_options(), [processor])
    if not recorded:
        setup.tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))  # the app's
    tracer = setup.tracer("lmscope")
    made = resolver(tracer)()[0].start_span("probe")
    assert (type(made) is RecordedSpan) is recorded
    made.end()
    script(tracer)
    assert processor.force_flush()
    setup.shutdown()
    return list(exporter.get_finished_spans())[1:]


def _frames_of_this_file(stacktrace: str) -> str:
    """The traceback's frames in this file and its last line: the recorder's and the SDK's own frames between the
    raise and the catch are each their own code."""
    lines = stacktrace.splitlines()
    kept = [line for line in lines if "test_recorded_span.py" in line]
    return "\n".join([re.sub(r"line \d+", "line N", line) for line in kept] + lines[-1:])


def _comparable(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    ids: dict[int, int] = {}

    def ref(context: SpanContext | None) -> Any:
        if context is None:
            return None
        if context.is_remote:
            return ("remote", context.trace_id, context.span_id)
        return ids.setdefault(context.span_id, len(ids))

    def event(item: Any) -> dict[str, Any]:
        attributes = dict(item.attributes)
        if "exception.stacktrace" in attributes:
            attributes["exception.stacktrace"] = _frames_of_this_file(attributes["exception.stacktrace"])
        return {"name": item.name, "attributes": attributes, "timestamp": item.timestamp if item.timestamp < 10**6
                else "now", "dropped": getattr(item.attributes, "dropped", 0)}

    spans = sorted(spans, key=lambda span: span.start_time or 0)
    for span in spans:
        ref(span.context)
    return [{
        "id": ref(span.context), "parent": ref(span.parent), "name": span.name, "kind": span.kind,
        "attributes": dict(span.attributes or {}), "dropped_attributes": span.dropped_attributes,
        "events": [event(item) for item in span.events], "dropped_events": span.dropped_events,
        "links": [(ref(link.context), dict(link.attributes or {})) for link in span.links],
        "dropped_links": span.dropped_links, "status": (span.status.status_code, span.status.description),
        "flags": int(span.context.trace_flags), "trace_state": span.context.trace_state.to_header(),
        "same_trace_as_parent": span.parent is None or span.parent.trace_id == span.context.trace_id,
        "resource": dict(span.resource.attributes), "scope": span.instrumentation_scope,
        "has_times": span.end_time is not None and span.start_time is not None and span.end_time >= span.start_time,
    } for span in spans]


def _same_both_ways(script: Script) -> list[dict[str, Any]]:
    recorded, made_by_sdk = (_comparable(_exported(script, recorded=way)) for way in (True, False))
    assert recorded == made_by_sdk
    return recorded


def test_everything_app_code_does_to_a_span_is_exported_as_the_sdk_exports_it(
        caplog: pytest.LogCaptureFixture) -> None:
    def script(tracer: trace.Tracer) -> None:
        values = ["a", "b"]
        root = tracer.start_span("root", kind=SpanKind.CLIENT, attributes={"start": 1, "tags": ["x", "y"]},
                                 links=[trace.Link(_REMOTE, {"why": "batch"})])
        with trace.use_span(root, end_on_exit=True):
            root.set_attribute("values", values)
            values.append("appended after it was set")  # the span keeps what was set
            meta, nested, counter = {"user": "alice"}, [["a"], ["b"]], _Counter()
            root.set_attributes({"meta": meta, "nested": nested, "object": counter})  # type: ignore[dict-item]
            meta["user"], counter.n = "CHANGED", 99  # neither reaches the span: values are taken when set
            nested[0].append("CHANGED")
            root.set_attributes({"count": 2, "start": 3})
            root.set_attribute("count", 4)  # set again: the later value, the key moved to the end
            root.add_event("checkpoint", {"step": 1}, timestamp=42)
            root.add_link(SpanContext(0x99, 0x98, is_remote=True), {"kind": "follows"})
            root.add_link(trace.INVALID_SPAN_CONTEXT)  # no context, no attributes: not a link
            root.update_name("root renamed")
            root.record_exception(RuntimeError("recorded, not raised"), {"extra": True}, timestamp=7)
            root.set_status(StatusCode.OK)
            root.set_status(Status(StatusCode.ERROR, "ignored: OK is final"))
            with pytest.raises(ValueError, match="inside"), tracer.start_as_current_span("child") as child:
                child.set_attribute("child", True)
                inner = tracer.start_span("grandchild", attributes={"deep": 1.5})
                inner.set_status(StatusCode.ERROR, "described")
                inner.end(end_time=inner_end)
                raise ValueError("inside")
        root.set_attribute("after the end", 1)
        root.end()
        later = tracer.start_span("no parent in the context", context=trace.set_span_in_context(
            NonRecordingSpan(_REMOTE)))
        later.end()
        tracer.start_span("under an unsampled parent", context=trace.set_span_in_context(
            NonRecordingSpan(_REMOTE_UNSAMPLED))).end()

    inner_end = 2**62
    with caplog.at_level(logging.WARNING):
        spans = _same_both_ways(script)
    assert [span["name"] for span in spans] == ["root renamed", "child", "grandchild", "no parent in the context"]
    root, child, grandchild, remote_child = spans
    assert {key: root["attributes"][key] for key in ("start", "tags", "values", "count")} == {
        "start": 3, "tags": ("x", "y"), "values": ("a", "b"), "count": 4}
    assert "CHANGED" not in str(root["attributes"]) and "99" not in str(root["attributes"])
    assert root["status"] == (StatusCode.OK, None) and [event["name"] for event in root["events"]] == [
        "checkpoint", "exception"]
    assert root["links"] == [(("remote", 0x1234, 0x5678), {"why": "batch"}), (("remote", 0x99, 0x98),
                                                                             {"kind": "follows"})]
    assert child["status"] == (StatusCode.ERROR, "ValueError: inside") and child["parent"] == root["id"]
    assert child["events"][0]["attributes"]["exception.type"] == "ValueError"
    assert grandchild["parent"] == child["id"] and grandchild["status"] == (StatusCode.ERROR, "described")
    assert remote_child["parent"] == ("remote", 0x1234, 0x5678) and remote_child["trace_state"] == "vendor=value"
    assert "Setting attribute on ended span." in caplog.text


def test_keys_that_are_not_strings_are_kept_or_dropped_as_the_sdk_does(caplog: pytest.LogCaptureFixture) -> None:
    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("keys", attributes={3: "start", "ok": 0})  # type: ignore[dict-item]
        span.set_attribute(1, "one value: dropped")  # type: ignore[arg-type]
        span.set_attribute("", "empty: dropped")
        span.set_attributes({2: "several: kept as text", "": "dropped", (1, 2): "kept"})  # type: ignore[dict-item]
        span.add_event("event", {4: "kept"})  # type: ignore[dict-item]
        span.end()

    with caplog.at_level(logging.WARNING):
        (span,) = _same_both_ways(script)
    assert span["attributes"] == {"3": "start", "ok": 0, "2": "several: kept as text", "(1, 2)": "kept"}
    assert span["dropped_attributes"] == 3 and span["events"][0]["attributes"] == {"4": "kept"}


def test_the_provider_limits_drop_what_the_sdk_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "1")

    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("limited", links=[trace.Link(_REMOTE), trace.Link(_REMOTE_UNSAMPLED)])
        span.set_attributes({"a": "long value", "b": 1, "c": 2})
        set_on_export(span, {"d": 3}, lambda: {"a": "again, long"})
        span.add_event("first", {"x": 1, "y": 2}, timestamp=1)
        span.add_event("second", timestamp=2)
        span.end()

    (span,) = _same_both_ways(script)
    assert span["attributes"] == {"c": 2, "d": 3, "a": "again"} and span["dropped_attributes"] == 2
    assert [event["name"] for event in span["events"]] == ["second"] and span["dropped_events"] == 1
    assert span["dropped_links"] == 1


def test_a_span_the_recorder_starts_inside_an_app_span_is_its_child() -> None:
    def script(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("outer"):
            app_context = trace.get_current_span().get_span_context()
            with tracer.start_as_current_span("inner") as inner:
                assert inner.get_span_context().trace_id == app_context.trace_id
                assert inner.is_recording()
            assert not inner.is_recording()

    outer, inner = _same_both_ways(script)
    assert inner["parent"] == outer["id"] and outer["parent"] is None


def test_a_processor_the_app_adds_while_a_span_runs_gets_that_span_at_its_end() -> None:
    """The SDK's provider hands a span to every processor it has when the span ends: one the app added meanwhile
    (through `Instrumentation.tracer_provider`) gets the span lmscope recorded, finished, as lmscope's exporters do."""
    exporter = InMemorySpanExporter()
    processor = BatchExportProcessor(exporter)
    setup = FakeGlobals(trace.ProxyTracerProvider()).registry().setup(resolve_options(), [processor])
    tracer = setup.tracer("lmscope")
    running = tracer.start_span("running while the app adds its processor")
    assert type(running) is RecordedSpan
    set_on_export(running, lambda: {"input.value": "built"})
    app = InMemorySpanExporter()
    setup.tracer_provider.add_span_processor(SimpleSpanProcessor(app))
    later = tracer.start_span("started after")  # the SDK's span now: the app's processor sees it whole
    assert type(later) is not RecordedSpan
    later.end()
    running.end()
    assert processor.force_flush()
    seen = {span.name: dict(span.attributes or {}) for span in app.get_finished_spans()}
    assert seen == {"started after": {}, "running while the app adds its processor": {"input.value": "built"}}
    assert {span.name for span in exporter.get_finished_spans()} == set(seen)


_FORK_APP = textwrap.dedent("""
    import json, os, sys, threading
    import lmscope
    from lmscope.telemetry._recorded_span import build_lock
    inst = lmscope.instrument(exporters="file", file_path=sys.argv[1])
    tracer = inst._tracing.tracer("fork-test")  # made before the fork, as instrument() makes lmscope's
    tracer.start_span("in the parent").end()
    held, release = threading.Event(), threading.Event()

    def hold():  # an export worker building a span at the moment of the fork
        with build_lock():
            held.set()
            release.wait()

    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        tracer.start_span("in the child").end()
        os._exit(0 if inst.force_flush(10_000) else 2)
    release.set()
    _, status = os.waitpid(pid, 0)
    inst.force_flush()
    print(json.dumps({"child": os.waitstatus_to_exitcode(status)}))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
@pytest.mark.usefixtures("clean_env")
def test_a_forked_child_records_spans_with_its_own_resource_and_exports_them(tmp_path: Path) -> None:
    """After a fork the SDK gives the provider a new resource (a new `service.instance.id`), and a lock a worker
    held at the fork is not held in the child: the child's recorded span carries the child's resource and leaves."""
    path = tmp_path / "traces.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", _FORK_APP, str(path)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"child": 0}
    instance = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            ids = [item["value"]["stringValue"] for item in resource["resource"]["attributes"]
                   if item["key"] == "service.instance.id"]
            for scope in resource["scopeSpans"]:
                instance.update({span["name"]: ids for span in scope["spans"]})
    assert set(instance) == {"in the parent", "in the child"}
    assert len(instance["in the child"]) == 1 and instance["in the child"] != instance["in the parent"]
