"""Tracer provider setup, and the OTLP exporters delivering to real local receivers (tests/conftest.py).

`set_tracer_provider` works once per process, so provider logic runs through a `ProviderRegistry` with an
injected global, and the real-global behaviour runs in subprocesses. lmscope never sets the global provider
(tests/telemetry/test_setup_order.py, test_provider_following.py: what happens when the app sets one later).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from app_env import app_env
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._options import ConfigError, Options, resolve_options
from lmscope.telemetry._pipeline import batch_processor
from lmscope.telemetry._span_switch import SwitchableSpanProcessor
from lmscope.telemetry._tracer_provider import ProviderRegistry, build_resource

pytestmark = pytest.mark.usefixtures("clean_env")  # tests/telemetry/conftest.py


class Recorder(SpanProcessor):
    """Records what the provider asked of it, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.calls.append(f"start {span.name}")

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(f"end {span.name}")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append("flush")
        return True

    def shutdown(self) -> None:
        self.calls.append("shutdown")


class FakeGlobals:
    """The API's global provider slot, once-only like `set_tracer_provider` (lmscope only reads it)."""

    def __init__(self, current: trace.TracerProvider) -> None:
        self.current = current
        self.exit_hooks: list[Callable[[], object]] = []

    def get(self) -> trace.TracerProvider:
        return self.current

    def set(self, provider: trace.TracerProvider) -> None:
        """What the app's `trace.set_tracer_provider` does."""
        if isinstance(self.current, trace.ProxyTracerProvider):
            self.current = provider

    def registry(self) -> ProviderRegistry:
        return ProviderRegistry(get_global=self.get, at_exit=self.exit_hooks.append)


def record(spans_from: InMemorySpanExporter) -> list[str]:
    return [span.name for span in spans_from.get_finished_spans()]


def in_memory() -> tuple[InMemorySpanExporter, SpanProcessor]:
    exporter = InMemorySpanExporter()
    return exporter, SimpleSpanProcessor(exporter)


def provider_processors(provider: TracerProvider) -> list[type]:
    # The SDK has no public listing of a provider's processors; this shows ours never accumulate.
    return [type(p) for p in provider._active_span_processor._span_processors]


# --- resource --------------------------------------------------------------------------------------------

def test_resource_carries_service_name_and_otel_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=from-attrs")
    resource = build_resource(resolve_options())
    assert (resource.attributes["service.name"], resource.attributes["deployment.environment"]) == (
        "from-attrs", "prod")
    resource = build_resource(resolve_options(service_name="arg"))
    assert (resource.attributes["service.name"], resource.attributes["deployment.environment"]) == ("arg", "prod")


def test_resource_service_name_follows_env_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_resource(Options()).attributes["service.name"] == "lmscope-app"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    # Options built by hand have no sources: the default must not override the standard variable.
    assert build_resource(Options()).attributes["service.name"] == "checkout"
    assert build_resource(resolve_options()).attributes["service.name"] == "checkout"
    monkeypatch.setenv("LMSCOPE_SERVICE_NAME", "ours")
    assert build_resource(resolve_options()).attributes["service.name"] == "ours"


# --- a fresh process: lmscope uses a provider of its own, and never sets the global one ---------------------

def test_fresh_process_uses_our_own_provider_and_leaves_the_global_unset() -> None:
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    registry = globals_.registry()
    exporter, processor = in_memory()

    setup = registry.setup(resolve_options(service_name="svc"), [processor])
    setup.tracer("test", "1.0").start_span("work").end()

    assert isinstance(setup.tracer_provider, TracerProvider)
    assert isinstance(globals_.current, trace.ProxyTracerProvider) and setup.owns_provider
    assert setup.tracer_provider.resource.attributes["service.name"] == "svc"
    assert record(exporter) == ["work"]
    span = exporter.get_finished_spans()[0]
    assert (span.instrumentation_scope.name, span.instrumentation_scope.version) == ("test", "1.0")
    assert provider_processors(setup.tracer_provider) == [SwitchableSpanProcessor]
    assert globals_.exit_hooks == [registry.shutdown_all]


def test_reinstrument_after_shutdown_reuses_our_provider() -> None:
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    registry = globals_.registry()
    first_exporter, first = in_memory()
    first_setup = registry.setup(Options(), [first])
    first_setup.shutdown()
    provider = first_setup.tracer_provider
    provider.get_tracer("app").start_span("between").end()

    second_exporter, second = in_memory()
    second_setup = registry.setup(Options(), [second])
    second_setup.tracer("test").start_span("again").end()

    assert second_setup.tracer_provider is provider
    assert isinstance(globals_.current, trace.ProxyTracerProvider) and second_setup.owns_provider
    assert (record(first_exporter), record(second_exporter)) == ([], ["again"])
    assert provider_processors(provider) == [SwitchableSpanProcessor]
    assert globals_.exit_hooks == [registry.shutdown_all]


def test_reusing_our_provider_with_new_service_name_warns(caplog: pytest.LogCaptureFixture) -> None:
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    registry = globals_.registry()
    registry.setup(resolve_options(service_name="first"), []).shutdown()
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        setup = registry.setup(resolve_options(service_name="second"), [])
    assert setup.tracer_provider.resource.attributes["service.name"] == "first"
    assert caplog.messages == ["lmscope: the tracer provider lmscope created earlier keeps service.name='first' (a "
                               "provider's resource is fixed); the new service.name='second' needs a new process"]


def test_shutdown_flushes_then_shuts_down_our_processors_once() -> None:
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    recorder = Recorder()
    setup = globals_.registry().setup(Options(), [recorder])
    setup.tracer("test").start_span("work").end()
    assert setup.force_flush() is True
    setup.shutdown()
    setup.shutdown()
    setup.tracer("test").start_span("after").end()
    assert recorder.calls == ["start work", "end work", "flush", "flush", "shutdown"]


def test_exit_hook_delivers_and_shuts_down_live_setups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # nothing leaves the batch unless flushed
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    registry = globals_.registry()
    exporter = InMemorySpanExporter()
    setup = registry.setup(Options(), [batch_processor(exporter, Options())])
    registry.setup(Options(), []).shutdown()  # a second setup does not register a second hook
    setup.tracer("test").start_span("queued").end()
    assert record(exporter) == []
    assert len(globals_.exit_hooks) == 1
    globals_.exit_hooks[0]()
    assert record(exporter) == ["queued"]
    assert setup.force_flush() is False  # shut down: nothing left to deliver


# --- the app already set an SDK provider ------------------------------------------------------------------

def app_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter, processor = in_memory()
    provider = TracerProvider(resource=Resource({"service.name": "app"}))
    provider.add_span_processor(processor)
    return provider, exporter


def test_existing_app_provider_gets_our_processors_added_for_our_spans_only() -> None:
    app, app_exporter = app_provider()
    globals_ = FakeGlobals(app)
    our_exporter, ours = in_memory()

    setup = globals_.registry().setup(resolve_options(service_name="ignored"), [ours])
    setup.tracer("lmscope").start_span("ours").end()
    app.get_tracer("app").start_span("apps").end()

    assert (setup.tracer_provider, setup.owns_provider, globals_.current) == (app, False, app)
    assert record(app_exporter) == ["ours", "apps"]
    assert record(our_exporter) == ["ours"]  # the app exports its own spans; ours would send them twice
    assert our_exporter.get_finished_spans()[0].resource.attributes["service.name"] == "app"


@pytest.mark.parametrize("order", ["app first", "app after instrument"])
def test_a_service_name_the_apps_provider_overrides_is_reported_as_it_is(order: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The app's provider fixes the resource of lmscope's spans: the setup says which service they carry, and a
    `service_name` lmscope was given that they cannot carry is one warning, whichever was set up first."""
    app, app_exporter = app_provider()
    globals_ = FakeGlobals(app if order == "app first" else trace.ProxyTracerProvider())
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        setup = globals_.registry().setup(resolve_options(service_name="checkout"), [])
        globals_.set(app)
        setup.tracer("lmscope").start_span("ours").end()

    assert app_exporter.get_finished_spans()[0].resource.attributes["service.name"] == "app"
    assert setup.service_name == "app"
    assert caplog.messages == ["lmscope: lmscope's spans go through the app's TracerProvider, whose resource says "
                               "service.name='app': the service_name='checkout' lmscope was given does not apply "
                               "to them"]


def test_a_service_name_from_the_standard_variables_is_the_apps_business(monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    app, _ = app_provider()
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        setup = FakeGlobals(app).registry().setup(resolve_options(), [])
    assert (setup.service_name, caplog.messages) == ("app", [])


def test_export_all_spans_gets_the_apps_spans_too() -> None:
    app, app_exporter = app_provider()
    our_exporter, ours = in_memory()

    setup = FakeGlobals(app).registry().setup(resolve_options(export_all_spans=True), [ours])
    setup.tracer("lmscope").start_span("ours").end()
    app.get_tracer("app").start_span("apps").end()

    assert (record(app_exporter), record(our_exporter)) == (["ours", "apps"], ["ours", "apps"])


def test_shutdown_leaves_app_provider_working() -> None:
    app, app_exporter = app_provider()
    globals_ = FakeGlobals(app)
    registry = globals_.registry()
    recorder = Recorder()
    registry.setup(Options(), [recorder]).shutdown()
    app.get_tracer("app").start_span("after").end()

    assert record(app_exporter) == ["after"]
    assert recorder.calls == ["flush", "shutdown"]

    again_exporter, again = in_memory()
    registry.setup(Options(), [again]).tracer("lmscope").start_span("again").end()
    assert (record(app_exporter), record(again_exporter)) == (["after", "again"], ["again"])
    assert provider_processors(app) == [SimpleSpanProcessor, SwitchableSpanProcessor]


def test_app_provider_shutdown_shuts_our_processors_once() -> None:
    app, _ = app_provider()
    recorder = Recorder()
    setup = FakeGlobals(app).registry().setup(Options(), [recorder])
    app.shutdown()  # the app's atexit, say
    setup.shutdown()
    assert recorder.calls == ["flush", "shutdown"]


def test_non_sdk_global_provider_gets_a_private_provider(caplog: pytest.LogCaptureFixture) -> None:
    globals_ = FakeGlobals(trace.NoOpTracerProvider())
    exporter, processor = in_memory()
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        setup = globals_.registry().setup(resolve_options(service_name="svc"), [processor])
    setup.tracer("test").start_span("work").end()

    assert (setup.owns_provider, record(exporter)) == (True, ["work"])
    assert globals_.current is not setup.tracer_provider
    assert caplog.messages == ["lmscope: the global tracer provider is a NoOpTracerProvider, not an OpenTelemetry "
                               "SDK TracerProvider; lmscope exports its own spans through a separate provider"]


# --- the real globals, in fresh processes -----------------------------------------------------------------

PRELUDE = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._tracer_provider import setup_tracing

def names(exporter):
    return [s.name for s in exporter.get_finished_spans()]

ours1, ours2, app_spans = InMemorySpanExporter(), InMemorySpanExporter(), InMemorySpanExporter()
"""


def run_python(body: str) -> dict[str, object]:
    env = app_env("LMSCOPE_", "OTEL_")
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_real_fresh_process_leaves_the_global_unset_and_reuses_our_provider() -> None:
    result = run_python("""
        first = setup_tracing(resolve_options(service_name="sub"), [SimpleSpanProcessor(ours1)])
        is_global = trace.get_tracer_provider() is first.tracer_provider
        first.tracer("lmscope").start_span("ours").end()
        trace.get_tracer("app").start_span("app-span").end()  # no provider of the app's: not recorded
        first.shutdown()
        second = setup_tracing(resolve_options(service_name="sub"), [SimpleSpanProcessor(ours2)])
        second.tracer("lmscope").start_span("later").end()
        print(json.dumps({"is_global": is_global, "reused": second.tracer_provider is first.tracer_provider,
                          "service": first.tracer_provider.resource.attributes["service.name"],
                          "first": names(ours1), "second": names(ours2)}))
    """)
    assert result == {"is_global": False, "reused": True, "service": "sub", "first": ["ours"],
                      "second": ["later"]}


def test_real_process_with_app_provider_keeps_it() -> None:
    result = run_python("""
        app = TracerProvider()
        app.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(app)
        setup = setup_tracing(resolve_options(), [SimpleSpanProcessor(ours1)])
        setup.tracer("lmscope").start_span("ours").end()
        setup.shutdown()
        trace.get_tracer("app").start_span("after").end()
        print(json.dumps({"same": setup.tracer_provider is app, "global": trace.get_tracer_provider() is app,
                          "owns": setup.owns_provider, "app": names(app_spans), "ours": names(ours1)}))
    """)
    assert result == {"same": True, "global": True, "owns": False, "app": ["ours", "after"], "ours": ["ours"]}


def test_the_handle_names_the_service_lmscopes_spans_carry_through_the_apps_provider() -> None:
    result = run_python("""
        import lmscope
        from opentelemetry.sdk.resources import Resource
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "app"})))
        handle = lmscope.instrument(service_name="checkout", exporters="none")
        print(json.dumps({"service": handle.service_name, "repr": repr(handle)}))
    """)
    assert result == {"service": "app",
                      "repr": "<lmscope instrumentation exporters=['none'] metrics_exporters=['none'] service='app'>"}


# --- OTLP exporters against local receivers ---------------------------------------------------------------

def send_one_span(options: Options) -> None:
    provider = TracerProvider(resource=build_resource(options))
    processor = batch_processor(otlp_span_exporter(options), options)
    provider.add_span_processor(processor)
    span = provider.get_tracer("lmscope.test").start_span("chat gpt-4o-mini")
    span.set_attribute("gen_ai.usage.input_tokens", 12)
    span.end()
    assert processor.force_flush() is True
    provider.shutdown()


def test_otlp_http_delivers_a_span_to_v1_traces(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=k3y")
    send_one_span(resolve_options(exporters="otlp", service_name="otlp-test", otlp_endpoint=receiver.url))

    [(path, headers, request)] = receiver.requests
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    [span] = scope_spans.spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert (path, headers["content-type"], headers["x-api-key"]) == ("/v1/traces", "application/x-protobuf", "k3y")
    assert resource["service.name"] == "otlp-test"
    assert (scope_spans.scope.name, span.name) == ("lmscope.test", "chat gpt-4o-mini")
    assert [(a.key, a.value.int_value) for a in span.attributes] == [("gen_ai.usage.input_tokens", 12)]


@pytest.mark.parametrize(("suffix", "expected_path"), [("/", "/v1/traces"), ("/custom/traces", "/custom/traces")])
def test_otlp_http_endpoint_path(receiver, suffix: str, expected_path: str) -> None:
    """A bare endpoint gets /v1/traces; an endpoint with a path is used as it is."""
    send_one_span(resolve_options(exporters="otlp", otlp_endpoint=receiver.url + suffix))
    assert [path for path, _, _ in receiver.requests] == [expected_path]


def test_otlp_http_without_endpoint_reads_otel_variables(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    send_one_span(resolve_options())
    assert [path for path, _, _ in receiver.requests] == ["/v1/traces"]


def test_otlp_grpc_delivers_a_span(grpc_receiver) -> None:
    send_one_span(resolve_options(exporters="otlp", otlp_protocol="grpc", otlp_endpoint=grpc_receiver.endpoint))
    assert [record.name for record in grpc_receiver.records()] == ["chat gpt-4o-mini"]


def test_grpc_without_its_exporter_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    monkeypatch.setenv("LMSCOPE_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigError) as caught:
        otlp_span_exporter(resolve_options(exporters="otlp"))
    assert str(caught.value) == (
        "lmscope: otlp_protocol: 'grpc' needs the gRPC exporter, which is not installed (from LMSCOPE_OTLP_PROTOCOL); "
        "allowed: http/protobuf, http/json, or grpc after pip install opentelemetry-exporter-otlp-proto-grpc")


# --- batch processor ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("queue", "batch_env", "expected"), [
    (8192, None, (8192, 512)),
    (100, None, (100, 100)),  # the SDK refuses a batch larger than the queue
    (100, "50", (100, 50)),
    (100, "500", (100, 100)),
])
def test_batch_processor_queue_and_batch_size(monkeypatch: pytest.MonkeyPatch, queue: int, batch_env: str | None,
                                              expected: tuple[int, int]) -> None:
    if batch_env is not None:
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch_env)
    processor = batch_processor(InMemorySpanExporter(), resolve_options(exporters="file", max_queue_size=queue))
    assert (processor.max_queue_size, processor.max_export_batch_size) == expected
    processor.shutdown()


def test_bad_bsp_variables_warn_once_and_keep_the_sdk_defaults(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "0")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        processors = [batch_processor(InMemorySpanExporter(), resolve_options(exporters="file")) for _ in range(2)]
    assert [processor.max_export_batch_size for processor in processors] == [512, 512]
    assert [record.getMessage() for record in caplog.records] == [
        "lmscope: ignoring OTEL_BSP_MAX_EXPORT_BATCH_SIZE='lots': not a positive integer; lmscope uses the SDK's "
        "default 512 instead",
        "lmscope: ignoring OTEL_BSP_SCHEDULE_DELAY='0': not a positive integer; lmscope uses the SDK's default 5000 "
        "instead"]
    for processor in processors:
        processor.shutdown()
