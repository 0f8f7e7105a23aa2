"""Meter provider setup: which provider lmscope records on, the Prometheus scrape endpoint, OTLP and console
metric exporters against real local receivers, and teardown.

`set_meter_provider` works once per process, so the app-provider cases inject the global; the real global
runs in a subprocess in tests/test_metrics_api.py.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import metrics
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from lmscope.telemetry import _metrics_setup as metrics_setup
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._lm_call import LMCall
from lmscope.telemetry._metrics import MetricsRecorder
from lmscope.telemetry._options import ConfigError, resolve_options

FRESH = LMCall(model="gpt-4o-mini", provider="openai", input_tokens=120, output_tokens=30, cached_tokens=64,
               cost_usd=0.0000312, engine="native", duration_s=0.42, module_path="rag.answer", cache_used=True)


@pytest.fixture(autouse=True)
def fresh_process_state(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_setup, "_warned_app_provider", False)


def no_app_provider() -> metrics.MeterProvider:
    return metrics.NoOpMeterProvider()


def record_fresh_call(setup: metrics_setup.MetricsSetup) -> None:
    MetricsRecorder(setup.meter(semconv.METER_NAME, "0.1.0")).record_lm_call(FRESH)


def scrape(setup: metrics_setup.MetricsSetup) -> str:
    host, port = setup.prometheus_address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return response.read().decode()


# --- which provider -----------------------------------------------------------------------------------------

def test_metrics_off_without_exporters_or_app_provider() -> None:
    assert metrics_setup.setup_metrics(resolve_options(), get_global=no_app_provider) is None


def test_no_exporters_records_on_the_app_provider(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    app = MeterProvider(metric_readers=[reader])
    setup = metrics_setup.setup_metrics(resolve_options(), get_global=lambda: app)
    assert setup is not None and setup.meter_provider is app and not setup.owns_provider
    record_fresh_call(setup)
    [scope] = reader.get_metrics_data().resource_metrics[0].scope_metrics
    assert scope.scope.name == "lmscope"
    setup.shutdown()
    record_fresh_call(metrics_setup.MetricsSetup(app, owns_provider=False))  # the app's provider still works
    assert not caplog.records
    app.shutdown()


def test_exporters_with_an_app_provider_use_our_own_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    app_reader = InMemoryMetricReader()
    app = MeterProvider(metric_readers=[app_reader])
    options = resolve_options(metrics_exporters="prometheus", prometheus_endpoint="127.0.0.1:0")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        first = metrics_setup.setup_metrics(options, get_global=lambda: app)
        second = metrics_setup.setup_metrics(options, get_global=lambda: app)
    try:
        assert first.owns_provider and first.meter_provider is not app
        record_fresh_call(first)
        assert "gen_ai_client_token_usage_bucket" in scrape(first)
        assert app_reader.get_metrics_data() is None  # not recorded twice: nothing went through the app's
        [warning] = [r.getMessage() for r in caplog.records]
        assert warning == ("lmscope: the app's MeterProvider cannot take new metric readers (the SDK fixes them at "
                           "creation); lmscope's metrics go to prometheus through its own MeterProvider, not "
                           "through the app's")
    finally:
        first.shutdown()
        second.shutdown()
        app.shutdown()


# --- prometheus ---------------------------------------------------------------------------------------------

def test_prometheus_endpoint_serves_translated_names_with_service_name() -> None:
    options = resolve_options(service_name="checkout", metrics_exporters="prometheus",
                              prometheus_endpoint="127.0.0.1:0")
    setup = metrics_setup.setup_metrics(options, get_global=no_app_provider)
    try:
        record_fresh_call(setup)
        text = scrape(setup)
    finally:
        setup.shutdown()
    labels = ('gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",'
              'lmscope_module_path="rag.answer",lmscope_phase="serve",otel_scope_name="lmscope",otel_scope_schema_url="",'
              'otel_scope_version="0.1.0",service_name="checkout"')
    for line in (f"gen_ai_usage_cost_USD_total{{{labels}}} 3.12e-05",
                 f"lmscope_usage_cached_tokens_total{{{labels}}} 64.0",
                 f"gen_ai_client_operation_duration_seconds_count{{{labels}}} 1.0",
                 f"gen_ai_client_operation_duration_seconds_sum{{{labels}}} 0.42",
                 'gen_ai_client_operation_duration_seconds_bucket{' + labels.replace(
                     'lmscope_module_path', 'le="0.64",lmscope_module_path') + '} 1.0',
                 'gen_ai_client_token_usage_sum{' + labels.replace(
                     'lmscope_module_path', 'gen_ai_token_type="input",lmscope_module_path') + '} 120.0',
                 'lmscope_cache_requests_total{' + labels.replace(
                     'lmscope_module_path', 'lmscope_cache_result="miss",lmscope_module_path') + '} 1.0'):
        assert line in text.splitlines(), line


def test_uninstrument_stops_the_endpoint() -> None:
    setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="prometheus",
                                                        prometheus_endpoint="127.0.0.1:0"), get_global=no_app_provider)
    host, port = setup.prometheus_address
    setup.shutdown()
    setup.shutdown()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5)


def test_a_taken_port_warns_and_runs_on(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="lmscope"):
            setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="prometheus,console",
                                                                prometheus_endpoint=endpoint),
                                                get_global=no_app_provider)
    assert setup.prometheus_address is None
    record_fresh_call(setup)  # the other exporter still works
    setup.shutdown()
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"lmscope: cannot serve Prometheus metrics on {endpoint} (")


def test_prometheus_without_its_exporter_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)  # import fails as if not installed
    monkeypatch.setenv("LMSCOPE_METRICS_EXPORTERS", "otlp,prometheus")
    threads = threading.active_count()
    with pytest.raises(ConfigError) as caught:
        metrics_setup.setup_metrics(resolve_options(), get_global=no_app_provider)
    assert str(caught.value) == (
        "lmscope: metrics_exporters: 'prometheus' needs opentelemetry-exporter-prometheus, which is not installed "
        "(from LMSCOPE_METRICS_EXPORTERS); allowed: otlp, console, none, or prometheus after pip install "
        "'lmscope[prometheus]'")
    assert threading.active_count() == threads  # failed before starting any exporter thread


def test_otel_metrics_exporter_prometheus_without_its_exporter_is_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The standard variable is the deployment's: lmscope cannot honour `prometheus` there, so it warns and goes on
    with the other metrics exporters, as for any standard variable it cannot honour."""
    from lmscope.telemetry import _options

    monkeypatch.setattr(_options, "_warned", set())
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console,prometheus")
    monkeypatch.setenv("LMSCOPE_CONSOLE_STREAM", "stdout")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        setup = metrics_setup.setup_metrics(resolve_options(exporters="none"), get_global=no_app_provider)
    assert setup is not None and setup.prometheus_address is None and len(setup.push_readers) == 1
    setup.shutdown()
    assert [r.getMessage() for r in caplog.records] == [
        "lmscope: ignoring OTEL_METRICS_EXPORTER='console,prometheus': 'prometheus' needs "
        "opentelemetry-exporter-prometheus, which is not installed (pip install 'lmscope[prometheus]'); lmscope uses "
        "metrics_exporters=('console',) instead"]
    caplog.clear()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert metrics_setup.setup_metrics(resolve_options(exporters="none"), get_global=no_app_provider) is None
    assert len(caplog.records) == 1


def test_prometheus_is_not_imported_unless_selected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="console"), get_global=no_app_provider)
    setup.shutdown()


# --- OTLP and console ---------------------------------------------------------------------------------------

class MetricsReceiver(ThreadingHTTPServer):
    """An OTLP/HTTP metrics receiver on 127.0.0.1: keeps (path, headers, decoded request)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], metrics_service_pb2.ExportMetricsServiceRequest]] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: MetricsReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        self.server.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, request))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[MetricsReceiver]:
    server = MetricsReceiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def push_fresh_call(**options: object) -> None:
    setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="otlp", **options),
                                        get_global=no_app_provider)
    record_fresh_call(setup)
    assert setup.force_flush() is True
    setup.shutdown()


def test_otlp_delivers_metrics_to_v1_metrics(monkeypatch: pytest.MonkeyPatch, receiver: MetricsReceiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-api-key=k3y")
    push_fresh_call(service_name="otlp-test", otlp_endpoint=receiver.url)
    path, headers, request = receiver.received[0]
    assert (path, headers["x-api-key"]) == ("/v1/metrics", "k3y")
    [resource_metrics] = request.resource_metrics
    resource = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
    [scope_metrics] = resource_metrics.scope_metrics
    assert (resource["service.name"], scope_metrics.scope.name) == ("otlp-test", "lmscope")
    by_name = {metric.name: metric for metric in scope_metrics.metrics}
    assert set(by_name) == {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE, semconv.METRIC_COST,
                            semconv.METRIC_CACHED_TOKENS, semconv.METRIC_CACHE_REQUESTS}
    [cost] = by_name[semconv.METRIC_COST].sum.data_points
    assert (by_name[semconv.METRIC_COST].unit, cost.as_double) == ("USD", 0.0000312)
    [duration] = by_name[semconv.METRIC_OPERATION_DURATION].histogram.data_points
    assert tuple(duration.explicit_bounds) == semconv.DURATION_BUCKETS


@pytest.mark.parametrize(("suffix", "expected"), [("", "/v1/metrics"), ("/", "/v1/metrics"),
                                                  ("/v1/traces", "/v1/metrics"), ("/otlp", "/otlp/v1/metrics")])
def test_otlp_metrics_path_follows_the_shared_endpoint(receiver: MetricsReceiver, suffix: str, expected: str) -> None:
    push_fresh_call(otlp_endpoint=receiver.url + suffix)
    assert {path for path, _, _ in receiver.received} == {expected}


def test_otlp_without_endpoint_reads_the_metrics_variable(monkeypatch: pytest.MonkeyPatch,
                                                          receiver: MetricsReceiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # the signal-specific one wins
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.url + "/custom/metrics")
    push_fresh_call()
    assert {path for path, _, _ in receiver.received} == {"/custom/metrics"}


def test_grpc_metrics_without_its_exporter_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
    with pytest.raises(ConfigError) as caught:
        metrics_setup.setup_metrics(resolve_options(metrics_exporters="otlp"), get_global=no_app_provider)
    assert str(caught.value) == (
        "lmscope: otlp_protocol: 'grpc' needs the gRPC exporter, which is not installed "
        "(from OTEL_EXPORTER_OTLP_METRICS_PROTOCOL); allowed: http/protobuf, http/json, or grpc after pip install "
        "opentelemetry-exporter-otlp-proto-grpc")


def test_console_prints_on_flush(capsys: pytest.CaptureFixture[str]) -> None:
    setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="console", console_stream="stdout"),
                                        get_global=no_app_provider)
    record_fresh_call(setup)
    assert setup.force_flush() is True
    out = capsys.readouterr().out
    setup.shutdown()
    assert '"name": "gen_ai.client.token.usage"' in out and '"name": "lmscope"' in out


def test_otlp_metrics_keep_exemplars_of_the_sampled_span(receiver: MetricsReceiver) -> None:
    """Exemplars tie a metric point to the trace of a measurement (Grafana's link from a latency bucket to its trace):
    a reader that exports them gets them. Only a Prometheus-only setup, whose exporter writes none, skips sampling
    them."""
    from opentelemetry.sdk.trace import TracerProvider

    setup = metrics_setup.setup_metrics(resolve_options(metrics_exporters="otlp", otlp_endpoint=receiver.url),
                                        get_global=no_app_provider)
    with TracerProvider().get_tracer("app").start_as_current_span("call") as span:
        record_fresh_call(setup)
    assert setup.force_flush() is True
    setup.shutdown()
    _, _, request = receiver.received[0]  # the flush's (the shutdown pushes again)
    by_name = {metric.name: metric for metric in request.resource_metrics[0].scope_metrics[0].metrics}
    [duration] = by_name[semconv.METRIC_OPERATION_DURATION].histogram.data_points
    assert [exemplar.trace_id for exemplar in duration.exemplars] == [span.get_span_context().trace_id.to_bytes(16,
                                                                                                             "big")]
