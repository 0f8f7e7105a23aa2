"""OTLP/HTTP with JSON bodies (`otlp_protocol="http/json"`) against a real OTLP/HTTP receiver on 127.0.0.1.

The receiver (tests/otlp_servers.py) reads the body as a collector does: hex ids, the protobuf JSON mapping for the
rest, unknown fields rejected with 400; so a span that arrives here with the right ids and attributes is one a
collector would take.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._exporters.otlp_json_http import OtlpJsonHttpSpanExporter
from lmscope.telemetry._options import Options, resolve_options
from lmscope.telemetry._pipeline import build_span_processors
from lmscope.telemetry._tracer_provider import build_resource

pytestmark = pytest.mark.usefixtures("clean_env")


def send_spans(options: Options) -> dict[str, Any]:
    """A parent and a child span through the pipeline instrument() builds (batch processor, export guard);
    returns the SDK's ids and the flush result."""
    provider = TracerProvider(resource=build_resource(options))
    [processor] = build_span_processors(options)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("lmscope.test", "1.2")
    with tracer.start_as_current_span("rag", attributes={"lmscope.module.path": "rag"}) as parent, \
            tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as child:
        child.set_attributes({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.cost": 0.25,
                              "lmscope.cache.hit": False, "tag.tags": ("a", "b"), "big": 2**62})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    flushed = processor.force_flush()
    provider.shutdown()
    return {"flushed": flushed, "trace_id": format(parent.get_span_context().trace_id, "032x"),
            "parent_id": format(parent.get_span_context().span_id, "016x"),
            "child_id": format(child.get_span_context().span_id, "016x")}


def test_spans_arrive_as_json_with_exact_ids_and_attributes(receiver) -> None:
    sent = send_spans(resolve_options(exporters="otlp", otlp_protocol="http/json", otlp_endpoint=receiver.url,
                                      service_name="json-test"))
    assert sent["flushed"] is True
    [(path, headers, _)] = receiver.requests
    assert (path, headers["content-type"]) == ("/v1/traces", "application/json")
    assert "content-encoding" not in headers
    child, parent = receiver.records()
    assert (parent.name, parent.kind, parent.parent_span_id, parent.attributes) == (
        "rag", "INTERNAL", None, {"lmscope.module.path": "rag"})
    assert (child.name, child.kind, child.trace_id, child.span_id, child.parent_span_id) == (
        "chat gpt-4o-mini", "CLIENT", sent["trace_id"], sent["child_id"], sent["parent_id"])
    assert (parent.trace_id, parent.span_id) == (sent["trace_id"], sent["parent_id"])
    assert child.attributes == {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.cost": 0.25,
                                "lmscope.cache.hit": False, "tag.tags": ("a", "b"), "big": 2**62}
    assert (child.status_code, child.status_message) == ("ERROR", "boom")
    assert child.resource["service.name"] == "json-test"
    [resource_spans] = receiver.requests[0].request.resource_spans
    assert (resource_spans.scope_spans[0].scope.name, resource_spans.scope_spans[0].scope.version) == (
        "lmscope.test", "1.2")


def test_protocol_headers_and_gzip_from_standard_variables(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k3y,x-other=o%20k")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=traces-k3y")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    options = resolve_options(exporters="otlp")
    assert (options.otlp_protocol, options.sources["otlp_protocol"]) == (
        "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    assert send_spans(options)["flushed"] is True
    [(path, headers, _)] = receiver.requests
    # The traces variable replaces the generic one, as the SDK's exporter reads them.
    assert (path, headers["content-type"], headers["content-encoding"], headers["x-api-key"]) == (
        "/v1/traces", "application/json", "gzip", "traces-k3y")
    assert "x-other" not in headers
    assert [record.name for record in receiver.records()] == ["chat gpt-4o-mini", "rag"]


def test_traces_endpoint_variable_is_used_as_given(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/custom/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    assert send_spans(resolve_options(exporters="otlp"))["flushed"] is True
    assert [path for path, _, _ in receiver.requests] == ["/custom/traces"]


def one_span() -> list[Any]:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s")
    span.end()
    return [span]


def test_transient_status_is_retried(receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.fail_next = [503]
    exporter = OtlpJsonHttpSpanExporter(receiver.url + "/v1/traces", timeout=10)
    with caplog.at_level(logging.WARNING):
        assert exporter.export(one_span()) is SpanExportResult.SUCCESS
    assert receiver.posts == 2
    assert [record.name for record in receiver.records()] == ["s"]
    assert "code: 503" in caplog.text


@pytest.mark.parametrize("status", [400, 401, 500])
def test_other_errors_fail_at_once(status: int) -> None:
    import otlp_servers

    with otlp_servers.StatusServer(status) as server:
        exporter = OtlpJsonHttpSpanExporter(server.url + "/v1/traces", timeout=10)
        assert exporter.export(one_span()) is SpanExportResult.FAILURE
        assert server.posts == 1


def test_retries_end_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import otlp_servers

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5")
    with otlp_servers.StatusServer(429) as server:
        exporter = OtlpJsonHttpSpanExporter(server.url + "/v1/traces")
        started = time.monotonic()
        assert exporter.export(one_span()) is SpanExportResult.FAILURE
        assert time.monotonic() - started < 2.5
        assert server.posts >= 2


def test_shutdown_ends_a_backoff(receiver) -> None:
    import threading

    receiver.status = 503
    exporter = OtlpJsonHttpSpanExporter(receiver.url + "/v1/traces", timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(one_span())))
    worker.start()
    while receiver.posts == 0:
        time.sleep(0.01)
    exporter.shutdown()
    worker.join(timeout=5)
    assert results == [SpanExportResult.FAILURE]
    assert exporter.export(one_span()) is SpanExportResult.FAILURE


def test_jaeger_preset_speaks_http_json(receiver) -> None:
    options = resolve_options(exporters="jaeger", jaeger_protocol="http/json", jaeger_endpoint=receiver.url)
    assert send_spans(options)["flushed"] is True
    [(path, headers, _)] = receiver.requests
    assert (path, headers["content-type"]) == ("/v1/traces", "application/json")


def test_otlp_exporter_class_for_each_protocol() -> None:
    assert isinstance(otlp_span_exporter(resolve_options(exporters="otlp", otlp_protocol="http/json")),
                      OtlpJsonHttpSpanExporter)


def test_metrics_over_http_json_warn_once_and_use_protobuf(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from lmscope.telemetry import _metrics_setup

    monkeypatch.setattr(_metrics_setup, "_warned_metrics_json", False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    options = resolve_options(metrics_exporters="otlp", otlp_endpoint="http://127.0.0.1:1")
    assert options.otlp_metrics_protocol == "http/json"
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        first = _metrics_setup.otlp_metric_exporter(options)
        second = _metrics_setup.otlp_metric_exporter(options)
    assert isinstance(first, OTLPMetricExporter) and isinstance(second, OTLPMetricExporter)
    assert [record.getMessage() for record in caplog.records] == [
        "lmscope: otlp_protocol http/json (from OTEL_EXPORTER_OTLP_PROTOCOL) applies to spans; lmscope sends "
        "metrics over OTLP http/protobuf"]
    first.shutdown()
    second.shutdown()


def test_behind_the_export_guard_a_failing_backend_is_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The pipeline instrument() builds: the exporter's own per-attempt log lines stay out of the app's log, and
    lmscope's one warning names the exporter, the endpoint and the HTTP status."""
    import otlp_servers

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1.5")
    with otlp_servers.StatusServer(503) as server, caplog.at_level(logging.DEBUG):
        sent = send_spans(resolve_options(exporters="otlp", otlp_protocol="http/json", otlp_endpoint=server.url))
    assert sent["flushed"] is False
    assert [(record.name, record.levelno) for record in caplog.records if record.levelno >= logging.WARNING] == [
        ("lmscope", logging.WARNING)]
    warning = next(record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING)
    assert warning.startswith(f"lmscope: exporter otlp cannot deliver spans to {server.url}/v1/traces (")
    assert "503" in warning or "no success within the export timeout" in warning


@pytest.mark.parametrize(("variable", "value", "warning", "expected"), [
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "lmscope: ignoring OTEL_EXPORTER_OTLP_TIMEOUT='soon': not a positive number "
     "of seconds; lmscope uses the default timeout of 10 s instead", (10.0, None)),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "lmscope: ignoring OTEL_EXPORTER_OTLP_TRACES_TIMEOUT='-1': not a "
     "positive number of seconds; lmscope uses the default timeout of 10 s instead", (10.0, None)),
    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br", "lmscope: ignoring OTEL_EXPORTER_OTLP_TRACES_COMPRESSION='br': "
     "not a compression lmscope knows (gzip, deflate, none); lmscope uses no compression instead", (10.0, None)),
])
def test_bad_transport_variables_warn_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                           variable: str, value: str, warning: str,
                                           expected: tuple[float, str | None]) -> None:
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        exporters = [OtlpJsonHttpSpanExporter("http://127.0.0.1:1/v1/traces") for _ in range(2)]
    assert [(exporter._timeout, exporter._compression) for exporter in exporters] == [expected, expected]
    assert [record.getMessage() for record in caplog.records] == [warning]
