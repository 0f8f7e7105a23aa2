"""The OTLP/JSON file exporter writes the standard encoding, and the trace-file reader reads it back.

The Collector's `otlpjsonfile` receiver cannot run here, so the wire contract it documents is tested
instead: each line must parse, via the protobuf JSON mapping, into the same `ExportTraceServiceRequest`
the SDK's own OTLP/protobuf encoder produces from the same spans.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
from pathlib import Path

import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_spans_protobuf
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter, encode_spans
from lmscope.telemetry._trace_file import ReadProblems, read_trace_file, records_from_spans

REMOTE_PARENT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value")]),
)


def _finished_spans(build) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "lmscope-test", "deployment.environment": "ci"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _program(provider: TracerProvider) -> None:
    """A module span over an LM span and a failing retriever, plus a request continuing a remote trace."""
    dspy_tracer = provider.get_tracer("lmscope.instrumentation.dspy", "0.1.0", schema_url="https://opentelemetry.io/schemas/1.28.0")
    other_tracer = provider.get_tracer("app")
    root = dspy_tracer.start_span("rag", attributes={
        semconv.SPAN_KIND: semconv.KIND_CHAIN,
        semconv.MODULE_PATH: "rag",
        semconv.SETTINGS_OVERRIDES: ("lm", "temperature"),
        semconv.LM_CALLS: 1,
        semconv.COST_TOTAL_USD: 0.000125,
    })
    in_root = set_span_in_context(root)
    lm = dspy_tracer.start_span("chat gpt-4o-mini", in_root, kind=SpanKind.CLIENT, attributes={
        semconv.SPAN_KIND: semconv.KIND_LLM,
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.7,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        semconv.CACHE_HIT: False,
        "lmscope.test.empty": (),
        "lmscope.test.ints": (1, 2, 3),
        "lmscope.test.floats": (0.5, 1.5),
        "lmscope.test.bools": (True, False),
    })
    lm.add_event(semconv.ADAPTER_EVENT_FALLBACK, {"adapter": "JSONAdapter", "attempt": 2})
    lm.end()
    retriever = other_tracer.start_span("rag.retrieve", in_root, links=[Link(REMOTE_PARENT, {"reason": "replay"})])
    retriever.set_attribute(semconv.SPAN_KIND, semconv.KIND_RETRIEVER)
    error = ConnectionError("index offline")
    retriever.record_exception(error)
    retriever.set_status(Status(StatusCode.ERROR, f"ConnectionError: {error}"))
    retriever.set_attribute(semconv.ERROR_TYPE, "ConnectionError")
    retriever.end()
    root.end()
    server = other_tracer.start_span("POST /ask", set_span_in_context(NonRecordingSpan(REMOTE_PARENT)),
                                     kind=SpanKind.SERVER)
    server.set_status(Status(StatusCode.OK))
    server.end()


@pytest.fixture
def spans() -> list[ReadableSpan]:
    return _finished_spans(_program)


def _ids_to_base64(encoded: object) -> object:
    """The protobuf JSON mapping reads `bytes` fields as base64; OTLP/JSON writes ids as hex."""
    if isinstance(encoded, list):
        return [_ids_to_base64(item) for item in encoded]
    if not isinstance(encoded, dict):
        return encoded
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode() if key in ("traceId", "spanId", "parentSpanId")
        else _ids_to_base64(value)
        for key, value in encoded.items()
    }


def _parse(encoded: dict) -> ExportTraceServiceRequest:
    return ParseDict(_ids_to_base64(encoded), ExportTraceServiceRequest())


def _reference(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    """The SDK's OTLP/protobuf encoding of `spans`, plus the W3C trace flags in bits 0-7 of `flags`.

    The OTLP spec puts the trace flags there, and a link's trace state in `Link.trace_state`; the Python
    SDK leaves both out, we write them.
    """
    request = encode_spans_protobuf(spans)
    flags = {span.context.span_id: int(span.context.trace_flags) for span in spans}
    for span in (span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans):
        span.flags |= flags[int.from_bytes(span.span_id, "big")]
        for link in span.links:
            link.flags |= REMOTE_PARENT.trace_flags
            link.trace_state = REMOTE_PARENT.trace_state.to_header()
    return request


def test_encoding_parses_into_the_same_request_as_the_sdk_protobuf_encoder(spans: list[ReadableSpan]) -> None:
    assert _parse(encode_spans(spans)) == _reference(spans)


def test_encoding_shape(spans: list[ReadableSpan]) -> None:
    encoded = encode_spans(spans)
    [resource_spans] = encoded["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "lmscope-test"}} in resource_spans["resource"]["attributes"]
    dspy_scope, app_scope = resource_spans["scopeSpans"]
    assert dspy_scope["scope"] == {"name": "lmscope.instrumentation.dspy", "version": "0.1.0"}
    assert dspy_scope["schemaUrl"] == "https://opentelemetry.io/schemas/1.28.0"
    assert app_scope["scope"] == {"name": "app"}
    lm, root = dspy_scope["spans"]
    retriever, server = app_scope["spans"]
    by_id = {span.context.span_id: span for span in spans}

    assert root["traceId"] == format(by_id[int(root["spanId"], 16)].context.trace_id, "032x")
    assert len(root["traceId"]) == 32 and root["traceId"] == root["traceId"].lower()
    assert "parentSpanId" not in root
    assert lm["parentSpanId"] == root["spanId"] == retriever["parentSpanId"]
    assert server["parentSpanId"] == "b7ad6b7169203331"
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert (lm["kind"], root["kind"], server["kind"]) == (3, 1, 2)  # CLIENT, INTERNAL, SERVER
    assert lm["startTimeUnixNano"] == str(by_id[int(lm["spanId"], 16)].start_time)
    # Bits 0-7: the span's W3C trace flags; 0x100: whether the parent is remote is known; 0x200: it is.
    sdk_root = by_id[int(root["spanId"], 16)]
    assert root["flags"] == 0x100 | int(sdk_root.context.trace_flags)
    assert sdk_root.context.trace_flags.sampled
    assert server["flags"] == 0x300 | TraceFlags.SAMPLED
    assert server["traceState"] == "vendor=value"

    attributes = {item["key"]: item["value"] for item in lm["attributes"]}
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == {"intValue": "120"}
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == {"doubleValue": 0.7}
    assert attributes[semconv.CACHE_HIT] == {"boolValue": False}
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == {"arrayValue": {"values": [{"stringValue": "stop"}]}}
    assert attributes["lmscope.test.ints"] == {"arrayValue": {"values": [{"intValue": str(n)} for n in (1, 2, 3)]}}
    assert attributes["lmscope.test.empty"] == {"arrayValue": {"values": []}}
    [event] = lm["events"]
    assert event["name"] == semconv.ADAPTER_EVENT_FALLBACK
    assert event["attributes"] == [
        {"key": "adapter", "value": {"stringValue": "JSONAdapter"}},
        {"key": "attempt", "value": {"intValue": "2"}},
    ]

    assert retriever["status"] == {"code": 2, "message": "ConnectionError: index offline"}
    assert retriever["events"][0]["name"] == "exception"
    [link] = retriever["links"]
    assert (link["traceId"], link["spanId"], link["flags"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0x301)
    assert link["attributes"] == [{"key": "reason", "value": {"stringValue": "replay"}}]
    assert server["status"] == {"code": 1}
    assert lm["status"] == {"code": 0}


def test_non_finite_doubles_use_the_protobuf_json_spelling(tmp_path: Path) -> None:
    def build(provider: TracerProvider) -> None:
        provider.get_tracer("t").start_span("s", attributes={"nan": math.nan, "inf": math.inf, "ninf": -math.inf}).end()

    [span] = _finished_spans(build)
    encoded = encode_spans([span])
    json.dumps(encoded, allow_nan=False)  # strict JSON: no NaN/Infinity literals
    values = {item["key"]: item["value"] for item in encoded["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]}
    assert values == {"nan": {"doubleValue": "NaN"}, "inf": {"doubleValue": "Infinity"}, "ninf": {"doubleValue": "-Infinity"}}
    assert _parse(encoded) == _reference([span])

    exporter = OtlpJsonFileExporter(tmp_path / "spans.jsonl")
    exporter.export([span])
    [record] = read_trace_file(tmp_path / "spans.jsonl")
    assert math.isnan(record.attributes["nan"]) and record.attributes["inf"] == math.inf == -record.attributes["ninf"]


def test_file_has_one_line_per_export_and_reads_back_the_same_records(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "runs" / "today" / "spans.jsonl"
    exporter = OtlpJsonFileExporter(path)
    assert not path.parent.exists()  # opened lazily

    assert exporter.export(spans[:2]) is SpanExportResult.SUCCESS
    assert exporter.export(spans[2:]) is SpanExportResult.SUCCESS
    assert exporter.export([]) is SpanExportResult.SUCCESS
    exporter.shutdown()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert [_parse(json.loads(line)) for line in lines] == [_reference(spans[:2]), _reference(spans[2:])]
    records = read_trace_file(path)
    assert records == records_from_spans(spans)
    by_name = {record.name: record for record in records}
    lm, root, retriever = by_name["chat gpt-4o-mini"], by_name["rag"], by_name["rag.retrieve"]
    assert lm.kind == "CLIENT" and lm.parent_span_id == root.span_id == retriever.parent_span_id
    assert root.parent_span_id is None and root.trace_id == lm.trace_id
    assert by_name["POST /ask"].parent_span_id == "b7ad6b7169203331"
    assert lm.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert lm.attributes["lmscope.test.bools"] == (True, False)
    assert lm.events[0].attributes == {"adapter": "JSONAdapter", "attempt": 2}
    assert lm.resource["service.name"] == "lmscope-test"
    assert (retriever.status_code, retriever.status_message) == ("ERROR", "ConnectionError: index offline")
    assert retriever.duration_ms == (retriever.end_ns - retriever.start_ns) / 1e6


def test_appends_across_exporters_and_is_thread_safe(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    first = OtlpJsonFileExporter(path)
    first.export(spans)
    first.shutdown()

    exporter = OtlpJsonFileExporter(path)
    threads = [threading.Thread(target=lambda: [exporter.export(spans) for _ in range(25)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporter.shutdown()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 8 * 25
    assert all(len(json.loads(line)["resourceSpans"][0]["scopeSpans"]) == 2 for line in lines)


def test_io_error_returns_failure_and_warns_once(spans: list[ReadableSpan], tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    exporter = OtlpJsonFileExporter(blocker / "spans.jsonl")  # its parent is a file
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len(caplog.records) == 1
    assert "not-a-dir" in caplog.records[0].getMessage()
    exporter.shutdown()


def test_export_after_shutdown_fails_without_writing(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = OtlpJsonFileExporter(path)
    exporter.export(spans)
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_bad_line_names_the_file_and_line_and_the_rest_is_read(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(encode_spans(spans)) + "\n\n" + '{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}\n'
                    + "{not json\n" + json.dumps(encode_spans(spans)) + "\n")
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps(encode_spans(spans)) + "\n")
    problems = ReadProblems("spans.jsonl")
    assert read_trace_file(path, problems) == read_trace_file(clean) * 2
    assert problems.lines() == ["spans.jsonl line 3: span 1 has no traceId; skipped (and 1 more problem)",
                                "spans.jsonl: skipped 1 unreadable line (4)"]
