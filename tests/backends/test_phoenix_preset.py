"""The `phoenix` preset against a local OTLP receiver: where it sends, the project on its copies' resource only,
the API key as Phoenix's client sends it and nowhere else. test_phoenix.py proves the same against a real Phoenix.
"""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_servers import refused_url  # loaded by tests/conftest.py

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.phoenix import phoenix_span_exporter, phoenix_traces_url
from lmscope.telemetry._options import ConfigError, resolve_options
from lmscope.telemetry._pipeline import build_span_processors

API_KEY = "px-SECRET-api-key-0006"
COLLECTOR_KEY = "collector-SECRET-key-0007"


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://localhost:6006", "http://localhost:6006/v1/traces"),  # phoenix.otel's default, as a base URL
    ("http://localhost:6006/", "http://localhost:6006/v1/traces"),
    ("http://localhost:6006/v1/traces", "http://localhost:6006/v1/traces"),  # already the traces URL
    ("https://proxy.example/phoenix", "https://proxy.example/phoenix/v1/traces"),  # behind a path prefix
    ("https://app.phoenix.arize.com/s/my-space", "https://app.phoenix.arize.com/s/my-space/v1/traces"),  # Cloud
])
def test_the_endpoint_is_phoenixs_base_url(endpoint: str, url: str) -> None:
    assert phoenix_traces_url(endpoint) == url


def _export(exporters: str, **options: str) -> list:
    """One span through the processors instrument() would build; returns what the app-side copy kept."""
    provider = TracerProvider(resource=Resource({"service.name": "preset-test"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for processor in build_span_processors(resolve_options(exporters=exporters, **options)):
        provider.add_span_processor(processor)
    provider.get_tracer("phoenix-test").start_span("rag", attributes={semconv.SPAN_KIND: "CHAIN"}).end()
    provider.shutdown()
    return list(memory.get_finished_spans())


def _resource_attributes(request) -> dict[str, str]:
    [resource_spans] = request.resource_spans
    return {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}


def test_project_key_and_endpoint_from_phoenixs_variables(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", receiver.url)
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "my-project")
    monkeypatch.setenv("PHOENIX_API_KEY", API_KEY)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-collector-key={COLLECTOR_KEY}")
    [kept] = _export("phoenix")
    [received] = receiver.requests
    assert received.path == "/v1/traces"
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert "x-collector-key" not in received.headers  # a collector's key is not Phoenix's
    assert _resource_attributes(received.request) == {"service.name": "preset-test",
                                                      semconv.PROJECT_NAME: "my-project"}
    assert API_KEY.encode() not in received.request.SerializeToString()
    assert semconv.PROJECT_NAME not in kept.resource.attributes  # the other exporters keep lmscope's resource


def test_without_phoenix_variables_the_resource_and_headers_are_lmscopes(receiver) -> None:
    _export("phoenix", phoenix_endpoint=receiver.url + "/v1/traces")
    [received] = receiver.requests
    assert "authorization" not in received.headers
    assert _resource_attributes(received.request) == {"service.name": "preset-test"}  # Phoenix's `default`


def test_combined_with_another_backend_each_gets_its_own(monkeypatch: pytest.MonkeyPatch, receiver,
                                                         second_receiver) -> None:
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "phoenix,jaeger")
    monkeypatch.setenv("LMSCOPE_PHOENIX_ENDPOINT", receiver.url)
    monkeypatch.setenv("LMSCOPE_JAEGER_ENDPOINT", second_receiver.url)
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "only-phoenix")
    monkeypatch.setenv("PHOENIX_API_KEY", API_KEY)
    provider = TracerProvider()
    for processor in build_span_processors(resolve_options()):
        provider.add_span_processor(processor)
    provider.get_tracer("phoenix-test").start_span("rag").end()
    provider.shutdown()
    [phoenix], [jaeger] = receiver.requests, second_receiver.requests
    assert semconv.PROJECT_NAME in _resource_attributes(phoenix.request)
    assert semconv.PROJECT_NAME not in _resource_attributes(jaeger.request)
    assert "authorization" not in jaeger.headers and API_KEY not in " ".join(jaeger.headers.values())


def test_a_key_that_cannot_be_a_header_fails_at_instrument_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "phoenix")
    monkeypatch.setenv("PHOENIX_API_KEY", "px-SECRET\nx-injected: 1")
    with pytest.raises(ConfigError) as caught:
        phoenix_span_exporter(resolve_options())
    assert str(caught.value) == (
        "lmscope: exporters: 'phoenix': PHOENIX_API_KEY holds whitespace or control characters (from "
        "LMSCOPE_EXPORTERS); allowed: an API key as Phoenix shows it, or none for a server without auth")


@pytest.mark.parametrize("project", [None, "p"])
def test_a_phoenix_that_is_down_is_named_in_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture, project: str | None) -> None:
    """Through the export guard, as `instrument()` builds it: the warning names the traces URL it could not reach,
    with or without the project wrapper in between."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    from lmscope.telemetry._export_guard import GuardedExporter

    if project:
        monkeypatch.setenv("PHOENIX_PROJECT_NAME", project)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # the SDK retries a refused connection until its timeout
    down = refused_url()
    exporter = GuardedExporter(phoenix_span_exporter(resolve_options(exporters="phoenix", phoenix_endpoint=down)),
                               "phoenix")
    span = TracerProvider().get_tracer("t").start_span("work")
    span.end()
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert [exporter.export([span]) for _ in range(2)] == [SpanExportResult.FAILURE] * 2
    [message] = [r.getMessage() for r in caplog.records if r.name == "lmscope"]
    # The reason depends on timing (connection refused, or no success within the 1 s timeout).
    assert message.startswith(f"lmscope: exporter phoenix cannot deliver spans to {down}/v1/traces ("), message
    exporter.shutdown()
