"""lmscope's tracer follows the global provider the app sets after `instrument()`, in process.

The global slot is a `FakeGlobals` (tests/telemetry/test_providers.py) the registry reads, so these run in this
process; tests/telemetry/test_setup_order.py runs the real globals, DSPy and Logfire in fresh processes.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_providers import FakeGlobals, app_provider, in_memory, provider_processors, record

from lmscope.telemetry._exporters.console import ConsoleTreeProcessor
from lmscope.telemetry._options import ConfigError, Options, resolve_options
from lmscope.telemetry._span_switch import SwitchableSpanProcessor

pytestmark = pytest.mark.usefixtures("clean_env")


class Alone:
    """lmscope instrumented in a process where the app has set no provider yet; `app_sets_its_provider()` later."""

    def __init__(self) -> None:
        self.globals = FakeGlobals(trace.ProxyTracerProvider())
        self.registry = self.globals.registry()
        self.exporter, processor = in_memory()
        self.setup = self.registry.setup(Options(), [processor])
        self.tracer = self.setup.tracer("lmscope")

    def app_sets_its_provider(self) -> tuple[TracerProvider, InMemorySpanExporter]:
        app, app_exporter = app_provider()
        self.globals.set(app)  # the app's trace.set_tracer_provider, after instrument(): nothing refuses it
        return app, app_exporter


def test_lmscope_first_then_the_app_provider_our_spans_follow_it() -> None:
    lmscope = Alone()
    tracer, setup = lmscope.tracer, lmscope.setup
    tracer.start_span("before").end()
    own = setup.tracer_provider

    app, app_exporter = lmscope.app_sets_its_provider()
    tracer.start_span("after").end()
    app.get_tracer("app").start_span("apps").end()
    with tracer.start_as_current_span("current") as span:
        assert trace.get_current_span() is span

    assert lmscope.globals.current is app
    assert (setup.tracer_provider, setup.owns_provider, lmscope.registry.own_provider) == (app, False, own)
    assert record(app_exporter) == ["after", "apps", "current"]
    assert record(lmscope.exporter) == ["before", "after", "current"]
    assert provider_processors(app) == [SimpleSpanProcessor, SwitchableSpanProcessor]


def test_a_span_open_when_the_app_sets_its_provider_reaches_ours_once() -> None:
    lmscope = Alone()
    tracer = lmscope.tracer
    outer = tracer.start_span("outer")
    _app, app_exporter = lmscope.app_sets_its_provider()
    inner = tracer.start_span("inner", trace.set_span_in_context(outer))
    inner.end()
    outer.end()

    assert (record(lmscope.exporter), record(app_exporter)) == (["inner", "outer"], ["inner"])
    assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
    assert inner.parent is not None and inner.parent.span_id == outer.get_span_context().span_id


def test_uninstrument_after_following_detaches_from_both_providers() -> None:
    lmscope = Alone()
    registry, setup, tracer = lmscope.registry, lmscope.setup, lmscope.tracer
    own = setup.tracer_provider
    app, app_exporter = lmscope.app_sets_its_provider()
    tracer.start_span("followed").end()
    setup.shutdown()
    tracer.start_span("after teardown").end()
    assert isinstance(own, TracerProvider)
    own.get_tracer("lmscope").start_span("on ours").end()

    assert record(lmscope.exporter) == ["followed"]
    assert record(app_exporter) == ["followed", "after teardown"]
    assert registry.locks() and all(not lock.locked() for lock in registry.locks())
    again_exporter, again = in_memory()
    registry.setup(Options(), [again]).tracer("lmscope").start_span("again").end()
    assert record(again_exporter) == ["again"]
    assert provider_processors(app).count(SwitchableSpanProcessor) == 1


def test_exporters_from_otel_traces_exporter_stand_down_once_the_apps_provider_exports(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The other order of tests/telemetry/test_options_otel_exporters.py: the variable is the app's provider's to
    honour once lmscope's spans go through it; exporters asked of lmscope itself keep theirs."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    globals_ = FakeGlobals(trace.ProxyTracerProvider())
    registry = globals_.registry()
    from_variable, variable_processor = in_memory()
    asked, asked_processor = in_memory()
    tracer = registry.setup(resolve_options(), [variable_processor]).tracer("lmscope")
    registry.setup(resolve_options(exporters="file"), [asked_processor]).tracer("lmscope")
    tracer.start_span("alone").end()
    app, app_exporter = app_provider()
    globals_.set(app)
    with caplog.at_level(logging.INFO, logger="lmscope"):
        tracer.start_span("shared").end()  # follows here

    assert (record(from_variable), record(asked), record(app_exporter)) == (["alone"], ["alone", "shared"],
                                                                           ["shared"])
    assert caplog.messages == ["lmscope: from now on lmscope's spans go through the app's TracerProvider, which "
                               "exports them: the exporters from OTEL_TRACES_EXPORTER no longer get new spans"]


def test_a_no_op_provider_set_later_keeps_our_own(caplog: pytest.LogCaptureFixture) -> None:
    lmscope = Alone()
    lmscope.globals.set(trace.NoOpTracerProvider())
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        lmscope.tracer.start_span("still ours").end()
        lmscope.tracer.start_span("and again").end()
    assert (record(lmscope.exporter), lmscope.setup.owns_provider) == (["still ours", "and again"], True)
    assert caplog.messages == ["lmscope: the global tracer provider is a NoOpTracerProvider, not an OpenTelemetry "
                               "SDK TracerProvider; lmscope exports its own spans through a separate provider"]


def test_console_prints_our_subtree_under_an_app_span() -> None:
    """On a shared provider the console sees only lmscope's spans: the top one under an app span is a root to it."""
    app, app_exporter = app_provider()
    stream = io.StringIO()
    setup = FakeGlobals(app).registry().setup(Options(), [ConsoleTreeProcessor(stream)])
    ours = setup.tracer("lmscope")
    apps = app.get_tracer("app")
    with apps.start_as_current_span("request"):
        with ours.start_as_current_span("program"), ours.start_as_current_span("program.predict"):
            pass
        printed_before_the_app_span_ended = stream.getvalue()
        with ours.start_as_current_span("second"):
            pass

    printed = stream.getvalue()
    assert "program.predict" in printed_before_the_app_span_ended and "second" not in printed_before_the_app_span_ended
    assert "request" not in printed  # the app's span is the app's to show
    assert [printed.count(name) for name in ("program", "program.predict", "second")] == [2, 1, 1]
    assert record(app_exporter) == ["program.predict", "program", "second", "request"]


@pytest.mark.parametrize(("kwargs", "env", "toml", "message"), [
    ({"export_all_spans": "sometimes"}, {}, None,
     "lmscope: export_all_spans: not a boolean: 'sometimes' (from argument); allowed: true, false, 1, 0, yes, no, "
     "on, off"),
    ({}, {"LMSCOPE_EXPORT_ALL_SPANS": "all"}, None,
     "lmscope: export_all_spans: not a boolean: 'all' (from LMSCOPE_EXPORT_ALL_SPANS); allowed: true, false, 1, 0, "
     "yes, no, on, off"),
    ({}, {}, "export-all-spans = 2",
     "lmscope: export_all_spans: not a boolean: 2 (from {pyproject} [tool.lmscope]); allowed: true, false, 1, 0, "
     "yes, no, on, off"),
])
def test_a_bad_export_all_spans_is_a_config_error(monkeypatch: pytest.MonkeyPatch, clean_env: Path,
                                                  kwargs: dict[str, object], env: dict[str, str], toml: str | None,
                                                  message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if toml is not None:
        (clean_env / "pyproject.toml").write_text(f"[tool.lmscope]\n{toml}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve_options(**kwargs)
    assert str(caught.value) == message.format(pyproject=clean_env / "pyproject.toml")


def test_console_keeps_an_open_sibling_subtree_for_its_own_printout() -> None:
    """Two lmscope subtrees open at once under one app span (threads, say): each prints whole, once, on its own."""
    app, _app_exporter = app_provider()
    stream = io.StringIO()
    ours = FakeGlobals(app).registry().setup(Options(), [ConsoleTreeProcessor(stream)]).tracer("lmscope")
    request = app.get_tracer("app").start_span("request")
    under_request = trace.set_span_in_context(request)
    first, second = ours.start_span("first", under_request), ours.start_span("second", under_request)
    first_child = ours.start_span("first.child", trace.set_span_in_context(first))
    second_child = ours.start_span("second.child", trace.set_span_in_context(second))
    second_child.end()
    first_child.end()
    first.end()
    printed_first = stream.getvalue()
    second.end()
    request.end()

    assert "first.child" in printed_first and "second" not in printed_first
    printed_second = stream.getvalue()[len(printed_first):]
    assert "second.child" in printed_second and "first" not in printed_second
