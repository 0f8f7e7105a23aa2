"""DSPyInstrumentor as an OpenTelemetry BaseInstrumentor: providers, content policy from the environment,
the one instance per process, the entry point, and the app's `suppress_instrumentation()`."""

from __future__ import annotations

import inspect
import sys
from importlib import metadata
from pathlib import Path

import pytest
from dspy_release import lm_request_hook, lm_result_hook

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.telemetry import _semconv as semconv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def providers(clean_env):
    """(TracerProvider, in-memory span exporter, MeterProvider, metric reader); uninstruments DSPy afterwards."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield tracer_provider, exporter, meter_provider, reader
    instrumentor = DSPyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    import dspy

    dspy.configure(lm=None, adapter=None, track_usage=False, callbacks=[])
    meter_provider.shutdown()


def _requirements(text):
    from packaging.requirements import Requirement

    return {str(Requirement(line)) for line in text}


@pytest.mark.parametrize("extra_name", ["dspy", "litellm"])
def test_instrumentation_dependencies_are_the_extras(extra_name):
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    instrumentor = {"dspy": DSPyInstrumentor, "litellm": LiteLLMInstrumentor}[extra_name]()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra_name]
    assert _requirements(instrumentor.instrumentation_dependencies()) == _requirements(extra)


def test_the_entry_point_names_the_instrumentor():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points["opentelemetry_instrumentor"] == {
        "lmscope_dspy": "lmscope.instrumentation.dspy:DSPyInstrumentor",
        "lmscope_litellm": "lmscope.instrumentation.litellm:LiteLLMInstrumentor"}
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    assert issubclass(DSPyInstrumentor, BaseInstrumentor)
    installed = [ep for ep in metadata.entry_points(group="opentelemetry_instrumentor") if ep.name == "lmscope_dspy"]
    if installed:  # an install older than the entry point (a reused venv) has none: pyproject.toml is checked above
        assert installed[0].load() is DSPyInstrumentor


def test_one_instance_per_process_and_a_second_construction_keeps_the_exact_restore(providers):
    from dspy.clients.base_lm import BaseLM
    from dspy.primitives.module import Module

    tracer_provider = providers[0]
    results_owner, results_name = lm_result_hook()
    before = (vars(Module)["__call__"], vars(BaseLM)["__call__"], vars(results_owner)[results_name])
    first = DSPyInstrumentor()
    first.instrument(tracer_provider=tracer_provider, capture_content=False)
    patched = vars(Module)["__call__"]
    # No `__wrapped__`, so that another tool's unwrap stops at it (lmscope/instrumentation/_patching.py); the
    # signature stays DSPy's.
    assert patched is not before[0] and not hasattr(patched, "__wrapped__")
    assert inspect.signature(patched) == inspect.signature(before[0])
    second = DSPyInstrumentor()  # `lmscope.instrument()`, a test, or the app: the same object, patches kept
    assert second is first and second.is_instrumented and second.is_instrumented_by_opentelemetry
    second.instrument(tracer_provider=tracer_provider, capture_content=False)  # refused: patched once only
    assert vars(Module)["__call__"] is patched
    second.uninstrument()
    assert (vars(Module)["__call__"], vars(BaseLM)["__call__"], vars(results_owner)[results_name]) == before
    assert not first.is_instrumented and not first.is_instrumented_by_opentelemetry


def test_providers_given_get_the_spans_under_lmscope_scope_and_the_metrics(providers, make_lm, unique,
                                                                           metric_series):
    import dspy

    tracer_provider, exporter, meter_provider, reader = providers
    DSPyInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                  capture_content=False)
    lm = make_lm()
    with dspy.context(lm=lm):
        answer = dspy.Predict("question -> answer")(question=f"Capital of France? {unique}").answer
    assert answer
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"predict", "chat gpt-4o-mini"}
    chat = spans["chat gpt-4o-mini"]
    scope = chat.instrumentation_scope
    assert (scope.name, scope.version, scope.schema_url) == (
        "lmscope.instrumentation.dspy", __import__("lmscope").__version__, semconv.SCHEMA_URL)
    usage = lm.history[-1]["usage"]
    assert chat.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert semconv.INPUT_VALUE not in chat.attributes and semconv.OUTPUT_VALUE not in chat.attributes
    series = metric_series(reader)
    tokens = series[semconv.METRIC_TOKEN_USAGE]
    assert sorted(total for _count, total in tokens.values()) == sorted(
        [usage["prompt_tokens"], usage["completion_tokens"]])
    assert list(series[semconv.METRIC_MODULE_DURATION]) == [
        frozenset({(semconv.MODULE_PATH, "predict"), (semconv.PHASE, semconv.PHASE_SERVE)})]


def test_no_meter_provider_and_no_sdk_global_one_records_no_metric(providers, make_lm, unique, monkeypatch):
    import dspy

    from lmscope.instrumentation.dspy import _runtime

    tracer_provider, exporter, _meter_provider, _reader = providers
    DSPyInstrumentor().instrument(tracer_provider=tracer_provider)  # the test process sets no global MeterProvider
    runtime = DSPyInstrumentor().runtime
    assert runtime is not None and isinstance(runtime, _runtime.Runtime)
    assert runtime.lm_call_listeners == [] and runtime.module_listeners == []
    with dspy.context(lm=make_lm()):
        dspy.Predict("question -> answer")(question=f"Capital of Japan? {unique}")
    assert len(exporter.get_finished_spans()) == 2


@pytest.mark.parametrize(("env", "inputs", "outputs"), [
    ({}, True, True),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}, False, False),
    ({"OPENINFERENCE_HIDE_INPUTS": "true"}, False, True),
    ({"OPENINFERENCE_HIDE_OUTPUTS": "true"}, True, False),
    ({"LMSCOPE_CAPTURE_CONTENT": "true", "OPENINFERENCE_HIDE_INPUTS": "true"}, True, True),
    ({"LMSCOPE_CAPTURE_CONTENT": "false"}, False, False),
])
def test_content_capture_comes_from_the_environment_as_lmscope_instrument_reads_it(providers, monkeypatch, env,
                                                                                    inputs, outputs):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    DSPyInstrumentor().instrument(tracer_provider=providers[0])
    runtime = DSPyInstrumentor().runtime
    assert runtime is not None
    assert (runtime.content.capture_inputs, runtime.content.capture_outputs) == (inputs, outputs)


def test_an_argument_outranks_the_environment(providers, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    DSPyInstrumentor().instrument(tracer_provider=providers[0], capture_content=True)
    runtime = DSPyInstrumentor().runtime
    assert runtime is not None and runtime.content.capture_inputs and runtime.content.capture_outputs


def test_the_apps_suppression_starts_no_span_records_nothing_and_changes_no_result(providers, make_lm, unique,
                                                                                  metric_series):
    import dspy
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from lmscope._demo import build_program

    tracer_provider, exporter, meter_provider, reader = providers
    DSPyInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    program = build_program(retrieve=lambda query: ["Paris is the capital of France."])
    lm = make_lm()
    question = f"What is the capital of France? {unique}"
    with dspy.context(lm=lm), suppress_instrumentation():
        quiet = program(question=question)
    assert exporter.get_finished_spans() == ()
    assert metric_series(reader) == {}
    with dspy.context(lm=lm):
        traced = program(question=question)  # the same prompts: DSPy's cache answers, as it did the first time
    assert traced.toDict() == quiet.toDict()
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == sorted(["rag", "rag.rewrite", "chat gpt-4o-mini", "rag.retrieve", "rag.answer",
                            "rag.answer.predict", "chat gpt-4o-mini"])
    assert semconv.METRIC_MODULE_DURATION in metric_series(reader)


def test_dspy_calls_inside_lmscopes_own_lm_span_stay_traced(providers, make_lm, unique, tree, monkeypatch):
    """lmscope's LM span enters suppression for other instrumentations; a DSPy call made inside an LM call (an LM
    calling another) is still lmscope's to trace."""
    import dspy

    tracer_provider, exporter, _meter_provider, _reader = providers
    DSPyInstrumentor().instrument(tracer_provider=tracer_provider, capture_content=False)
    helper = make_lm()
    request_owner, request_name = lm_request_hook()
    original_execute = getattr(request_owner, request_name)
    nested = []

    def execute(*args, **kwargs):  # runs inside the outer LM span (BaseLM.__call__ looks it up at each call)
        if not nested:
            nested.append("calling")
            nested.append(helper(f"Say yes. {unique}"))
        return original_execute(*args, **kwargs)

    monkeypatch.setattr(request_owner, request_name, execute)
    try:
        with dspy.context(lm=make_lm()):
            dspy.Predict("question -> answer")(question=f"Capital of Italy? {unique}")
    finally:  # before the fixture's uninstrument: lmscope wraps that function too, under this test's wrapper
        monkeypatch.undo()
    assert nested
    assert tree(exporter.get_finished_spans()) == [
        ("predict", [("chat gpt-4o-mini", [("chat gpt-4o-mini", [])])])]


async def _acall(program, **kwargs):
    return await program.acall(**kwargs)


def test_suppression_covers_async_calls_and_tools(providers, make_lm, unique):
    import asyncio

    import dspy
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    tracer_provider, exporter, _meter_provider, _reader = providers
    DSPyInstrumentor().instrument(tracer_provider=tracer_provider, capture_content=False)
    tool = dspy.Tool(lambda x: x * 2, name="double")
    with dspy.context(lm=make_lm()), suppress_instrumentation():
        assert tool(x=2) == 4
        asyncio.run(_acall(dspy.Predict("question -> answer"), question=f"Capital of Spain? {unique}"))
    assert exporter.get_finished_spans() == ()
    assert tool(x=3) == 6
    assert [span.name for span in exporter.get_finished_spans()] == ["execute_tool double"]


_FIRST_COMES_FIRST = """
import json, logging
logging.basicConfig(level=logging.INFO)
import dspy
from dspy.primitives.module import Module
from opentelemetry.sdk.trace import TracerProvider
import lmscope
from lmscope.instrumentation.dspy import DSPyInstrumentor

original = vars(Module)["__call__"]
DSPyInstrumentor().instrument(tracer_provider=TracerProvider())  # as opentelemetry-instrument does, first
patched = vars(Module)["__call__"]
handle = lmscope.instrument(exporters="none")
facts = {"owns": handle._owns_dspy, "same": handle._dspy is DSPyInstrumentor(), "kept": vars(Module)["__call__"] is patched}
lmscope.uninstrument()
facts["still_patched"] = vars(Module)["__call__"] is patched
DSPyInstrumentor().uninstrument()
facts["restored"] = vars(Module)["__call__"] is original
handle = lmscope.instrument(exporters="none")
facts["owns_later"] = handle._owns_dspy and vars(Module)["__call__"] is not original
lmscope.uninstrument()
facts["restored_again"] = vars(Module)["__call__"] is original
print(json.dumps(facts))
"""


def test_lmscope_instrument_leaves_an_instrumentor_someone_else_turned_on(clean_env):
    """The one DSPyInstrumentor belongs to whoever instrumented first: lmscope.instrument() neither patches twice
    nor undoes patches it did not make, and says so once."""
    import json
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run([sys.executable, "-c", _FIRST_COMES_FIRST], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"owns": False, "same": True, "kept": True, "still_patched": True,
                                       "restored": True, "owns_later": True, "restored_again": True}
    assert done.stderr.count("DSPy is instrumented already") == 1


def test_wrapped_methods_keep_their_type_hints(providers):
    """`typing.get_type_hints` of every method lmscope wraps is DSPy's: `dspy.Tool` reads it to build a tool's schema
    from a callable (`dspy.Tool(predictor.batch)`), and a type checker at runtime (pydantic's `validate_call`) too."""
    import typing

    import dspy
    from dspy.adapters.json_adapter import JSONAdapter
    from dspy.clients.base_lm import BaseLM
    from dspy.clients.cache import Cache
    from dspy.primitives.module import Module

    methods = [(owner, name) for owner, names in ((Module, ("__call__", "acall", "batch")),
                                                  (BaseLM, ("__call__", "acall")), (dspy.LM, ("forward", "aforward")),
                                                  (dspy.Evaluate, ("__call__",)), (JSONAdapter, ("__call__", "acall")),
                                                  (dspy.Tool, ("__call__", "acall")), (Cache, ("get", "cache_key")),
                                                  (dspy.Parallel, ("forward",)))
               for name in names if name in vars(owner)]
    before = {(owner, name): (vars(owner)[name], typing.get_type_hints(vars(owner)[name])) for owner, name in methods}
    DSPyInstrumentor().instrument(tracer_provider=providers[0], capture_content=False)
    wrapped = {method: hints for method, (original, hints) in before.items() if vars(method[0])[method[1]] is not original}
    assert {(Module, "__call__"), (Module, "batch"), (dspy.Tool, "__call__"), (dspy.Evaluate, "__call__")} <= set(wrapped)
    assert any(wrapped.values())  # DSPy annotates some of them: the comparison compares something
    for (owner, name), hints in wrapped.items():
        assert typing.get_type_hints(vars(owner)[name]) == hints, f"{owner.__name__}.{name}"
