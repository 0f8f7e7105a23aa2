"""`exporters=["jaeger"]`: Jaeger's documented OTLP wire contract, checked on a local receiver.

No Jaeger can run on this machine (no container engine; no package ships it), so these tests stand in for it
with an OTLP receiver on 127.0.0.1 speaking what Jaeger v2 accepts: OTLP/HTTP protobuf on `/v1/traces`
(port 4318), optionally gzipped, and OTLP/gRPC `TraceService/Export` (port 4317). Jaeger stores spans as sent,
so every span must arrive exactly as lmscope recorded it: same ids, parents, names, kinds, times, status,
events, resource and every attribute.
"""

from __future__ import annotations

import pytest

from lmscope.telemetry._exporters.endpoints import JAEGER_OTLP_GRPC_ENDPOINT, JAEGER_OTLP_HTTP_ENDPOINT
from lmscope.telemetry._exporters.jaeger import jaeger_endpoint
from lmscope.telemetry._options import resolve_options


def by_id(records: list) -> dict:
    return {record.span_id: record for record in records}


def test_http_protobuf_gzip_delivers_every_span_as_recorded(monkeypatch: pytest.MonkeyPatch, receiver,
                                                             traced_run) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")
    recorded = traced_run(resolve_options(exporters=["jaeger"], jaeger_endpoint=receiver.url,
                                          service_name="jaeger-test"))

    assert {(r.path, r.headers["content-type"], r.headers["content-encoding"], r.headers["x-tenant"])
            for r in receiver.requests} == {("/v1/traces", "application/x-protobuf", "gzip", "team-a")}
    received = receiver.records()
    assert len(received) == len(recorded) == len(by_id(received))  # each span once
    assert by_id(received) == by_id(recorded)
    assert {r.resource["service.name"] for r in received} == {"jaeger-test"}
    # The program's shape reached Jaeger: 3 traces, each rag -> rewrite/retrieve/answer, LM calls as CLIENT spans.
    assert sorted(r.name for r in received if r.parent_span_id is None) == ["rag", "rag", "rag"]
    assert {r.name for r in received} == {"rag", "rag.rewrite", "rag.retrieve", "rag.answer", "rag.answer.predict",
                                          "chat gpt-4o-mini"}


def test_grpc_delivers_every_span_as_recorded(monkeypatch: pytest.MonkeyPatch, grpc_receiver, traced_run) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-b")
    recorded = traced_run(resolve_options(exporters=["jaeger"], jaeger_protocol="grpc",
                                          jaeger_endpoint=grpc_receiver.endpoint))
    assert {r.headers["x-tenant"] for r in grpc_receiver.requests} == {"team-b"}
    assert by_id(grpc_receiver.records()) == by_id(recorded)


def test_standard_otel_endpoint_is_honoured(monkeypatch: pytest.MonkeyPatch, receiver, traced_run) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    recorded = traced_run(resolve_options(exporters="jaeger"))
    assert {r.path for r in receiver.requests} == {"/v1/traces"}
    assert by_id(receiver.records()) == by_id(recorded)


def test_explicit_jaeger_endpoint_beats_the_otel_variable(monkeypatch: pytest.MonkeyPatch, receiver,
                                                          second_receiver, traced_run) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", second_receiver.url)
    monkeypatch.setenv("LMSCOPE_JAEGER_ENDPOINT", receiver.url + "/v1/traces")
    recorded = traced_run(resolve_options(exporters="jaeger"))
    assert (len(receiver.records()), second_receiver.requests) == (len(recorded), [])


@pytest.mark.parametrize(("protocol", "expected"), [("http/protobuf", JAEGER_OTLP_HTTP_ENDPOINT),
                                                     ("grpc", JAEGER_OTLP_GRPC_ENDPOINT)])
def test_default_endpoint_is_jaegers_own_port(protocol: str, expected: str) -> None:
    assert jaeger_endpoint(resolve_options(exporters="jaeger", jaeger_protocol=protocol)) == expected
    assert (JAEGER_OTLP_HTTP_ENDPOINT, JAEGER_OTLP_GRPC_ENDPOINT) == ("http://localhost:4318", "http://localhost:4317")


def test_several_exporters_each_get_every_span(monkeypatch: pytest.MonkeyPatch, receiver, second_receiver,
                                               grpc_receiver, traced_run, tmp_path) -> None:
    from lmscope.telemetry._trace_file import read_trace_file

    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-many")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-many")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.endpoint)
    recorded = traced_run(resolve_options(
        exporters=["jaeger", "langfuse", "otlp", "file"], jaeger_endpoint=receiver.url,
        langfuse_host=second_receiver.url, otlp_protocol="grpc", file_path=tmp_path / "t.jsonl"))
    expected = sorted(r.span_id for r in recorded)
    assert len(expected) == 21
    for records in (receiver.records(), second_receiver.records(), grpc_receiver.records(),
                    read_trace_file(tmp_path / "t.jsonl")):
        assert sorted(r.span_id for r in records) == expected


@pytest.mark.parametrize("base_path", ["/otlp", "/otlp/"])
def test_generic_otel_endpoint_always_gets_v1_traces_like_the_otlp_exporter(
        monkeypatch: pytest.MonkeyPatch, receiver, second_receiver, traced_run, base_path: str) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL for every signal: the spec appends /v1/traces even when it has a
    path (an API gateway's /otlp prefix), and the `otlp` exporter does. The jaeger preset reading the same
    variable must post to the same URL. Fails if the preset uses a base with a path as given (.../otlp)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from lmscope.telemetry._exporters.otlp import otlp_span_exporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + base_path)
    traced_run(resolve_options(exporters="jaeger"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", second_receiver.url + base_path)
    otlp = otlp_span_exporter(resolve_options(exporters="otlp"))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otlp))
    provider.get_tracer("t").start_span("one").end()
    provider.shutdown()
    assert {r.path for r in receiver.requests} == {r.path for r in second_receiver.requests} == {"/otlp/v1/traces"}


@pytest.mark.parametrize("setting", ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "LMSCOPE_JAEGER_ENDPOINT", "argument"])
def test_a_traces_endpoint_with_a_path_is_used_as_given(monkeypatch: pytest.MonkeyPatch, receiver, traced_run,
                                                        setting: str) -> None:
    """The signal-specific variable and lmscope's own settings name the full URL: nothing is appended to a path
    (only a bare host gets /v1/traces). Fails if the generic variable's rule leaks to these sources."""
    url = receiver.url + "/otlp"
    if setting == "argument":
        options = resolve_options(exporters="jaeger", jaeger_endpoint=url)
    else:
        monkeypatch.setenv(setting, url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # outranked: never used
        options = resolve_options(exporters="jaeger")
    assert jaeger_endpoint(options) == url
    recorded = traced_run(options)
    assert {r.path for r in receiver.requests} == {"/otlp"}
    assert by_id(receiver.records()) == by_id(recorded)
