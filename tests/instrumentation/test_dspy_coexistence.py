"""lmscope next to the other DSPy instrumentations, with real DSPy, OpenInference, Logfire and MLflow.

For each tool, set up before or after `lmscope.instrument()`, and whichever of the two leaves first: lmscope's spans,
`track()`, metrics and `lmscope report` count every LM call exactly once, with the stand-in server's bill; lmscope
names the tool once in a warning; the other tool's uninstrument leaves lmscope tracing (and `lmscope.active()` says
so), and lmscope's uninstrument leaves the other tool's patches in place, over DSPy's own methods.

Each combination runs `coexistence_app.py` in a process of its own (the global OpenTelemetry providers are set once
per process); a few seconds each (imports), so they are `slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from lmscope import semconv
from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_records import SpanRecord

APP = Path(__file__).with_name("coexistence_app.py")
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["openinference", "logfire", "mlflow"]
ORDERS = ["first", "after"]
OFF_SWITCH = {"openinference": "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=dspy", "logfire": "logfire.instrument_dspy()",
              "mlflow": "mlflow.dspy.autolog(disable=True)"}
NAME = {"openinference": "OpenInference's DSPy instrumentor", "logfire": "Logfire's DSPy instrumentation",
        "mlflow": "MLflow's DSPy autologging"}
LM_CALLS_PER_QUESTION = 2  # the demo program: rewrite and answer


@cache
def run_app(tool: str, order: str, leaves: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(APP), tool, order, leaves], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def assert_exact(phase: dict[str, Any], questions: int) -> None:
    """track() equals the server's bill, and lmscope's token metric does too (cumulative over the process)."""
    assert phase["server_calls"] == questions * LM_CALLS_PER_QUESTION
    track = phase["track"]
    assert (track["calls"], track["input_tokens"], track["output_tokens"], track["unpriced_calls"]) == (
        phase["server_calls"], phase["server_prompt"], phase["server_completion"], 0)


def assert_report_exact(result: dict[str, Any], phases: list[str]) -> None:
    billed = [result[phase] for phase in phases]
    calls = sum(phase["server_calls"] for phase in billed)
    prompt = sum(phase["server_prompt"] for phase in billed)
    completion = sum(phase["server_completion"] for phase in billed)
    report = result["report"]
    assert {key: report[key] for key in ("calls", "input_tokens", "output_tokens", "unpriced")} == {
        "calls": calls, "input_tokens": prompt, "output_tokens": completion, "unpriced": 0}
    assert report["traces"] == sum(phase["questions"] for phase in billed)
    # Logfire's spans go to Logfire's own TracerProvider: the LM spans it encloses have their parent outside
    # lmscope's file, so the report cannot tell their module (README: "Other DSPy instrumentors").
    modules = ["rag.answer.predict", "rag.rewrite"]
    if result["tool"] == "logfire":  # known only for the calls made after Logfire's instrumentation left
        modules = ["(no module)", *(modules if "one_left" in phases else [])]
    assert report["by_module"] == modules
    ours = [span for span in result["lm_spans"] if span["lmscope"]]
    assert len(ours) == calls and sum(span["input_tokens"] for span in ours) == prompt
    assert result[phases[-1]]["metrics"] == {"input": prompt, "output": completion}


def assert_warned_once(result: dict[str, Any], tool: str) -> None:
    [warning] = result["warnings"]
    assert NAME[tool] in warning and OFF_SWITCH[tool] in warning and "also appears as" in warning


def both_on(tool: str, order: str, leaves: str) -> dict[str, Any]:
    """The app's result, checked for the part where both ran: two questions, four LM calls, one warning."""
    result = run_app(tool, order, leaves)
    assert_exact(result["both_on"], questions=2)
    assert_warned_once(result, tool)
    return result


EACH_TOOL_AND_ORDER = pytest.mark.parametrize(("tool", "order"), [(tool, order) for tool in TOOLS for order in ORDERS])


@pytest.mark.slow
@EACH_TOOL_AND_ORDER
def test_the_other_tool_leaving_leaves_lmscope_tracing(tool: str, order: str) -> None:
    result = both_on(tool, order, "other")
    assert result["active"] is True
    assert_exact(result["one_left"], questions=1)  # after the other tool's uninstrument / autolog(disable=True)
    assert_report_exact(result, ["both_on", "one_left"])
    # lmscope's uninstrument then puts back DSPy's own methods (MLflow re-patches Evaluate.__call__ even when
    # disabling; what it would put back is DSPy's own).
    none_left = result["state_none_left"]
    for key, own in result["dspy_own"].items():
        if not (tool == "mlflow" and key == "Evaluate.__call__"):
            assert none_left[key] == own, key
    assert none_left["mlflow_puts_back"] in ("<none>", "dspy:Evaluate.__call__")


@pytest.mark.slow
@EACH_TOOL_AND_ORDER
def test_lmscope_leaving_leaves_the_other_tool_over_dspy_own_methods(tool: str, order: str) -> None:
    result = both_on(tool, order, "lmscope")
    assert_report_exact(result, ["both_on"])
    assert result["active"] is False
    left = result["state_one_left"]
    if tool == "mlflow":
        assert left["callbacks"] == ["MlflowCallback"]
        assert left["mlflow_puts_back"] == "dspy:Evaluate.__call__"  # not lmscope's wrapper: lmscope has left
        expected = {key: own for key, own in result["dspy_own"].items() if key != "Evaluate.__call__"}
    else:  # OpenInference's wrappers stay, over DSPy's own methods
        expected = {**result["dspy_own"], "Module.__call__": "openinference(dspy:Module.__call__)",
                    "Module.acall": "openinference(dspy:Module.acall)",
                    "LM.__call__": "openinference(dspy:BaseLM.__call__)"}
    assert {key: left[key] for key in expected} == expected


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["openinference", "logfire"])
def test_openinference_wraps_lmscope_in_either_order(tool: str) -> None:
    """Whichever came first, OpenInference's wrappers enclose lmscope's: the same spans in both orders."""
    for order in ORDERS:
        state = run_app(tool, order, "other")["state_both_on"]
        assert (state["Module.__call__"], state["LM.__call__"], state["BaseLM.__call__"]) == (
            "openinference(lmscope)", "openinference(lmscope)", "lmscope"), order


def test_report_counts_lmscope_lm_spans_not_another_tools_llm_span_around_them() -> None:
    """OpenInference's `LM.__call__` LLM span around lmscope's `chat` span is the same call: one call, priced."""
    lmscope_span = {semconv.SPAN_KIND: semconv.KIND_LLM, semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 100, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
                    semconv.GEN_AI_USAGE_COST: 0.001, semconv.CACHE_HIT: False, "lmscope.settings.adapter": "ChatAdapter"}
    openinference_span = {semconv.SPAN_KIND: semconv.KIND_LLM, "llm.model_name": "openai/gpt-4o-mini",
                          semconv.INPUT_VALUE: "{}"}
    records = [
        SpanRecord("1" * 32, "0000000000000001", None, "predict", "INTERNAL", 0, 10,
                   {semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.MODULE_PATH: "predict"}),
        SpanRecord("1" * 32, "0000000000000002", "0000000000000001", "LM.__call__", "INTERNAL", 1, 9,
                   openinference_span),
        SpanRecord("1" * 32, "0000000000000003", "0000000000000002", "chat gpt-4o-mini", "CLIENT", 2, 8, lmscope_span),
    ]
    report = summarize(records)
    assert (report.total.calls, report.total.input_tokens, report.total.unpriced_calls) == (1, 100, 0)
    assert list(report.by_module) == ["predict"]


@pytest.mark.parametrize("order", ORDERS)
def test_in_process_openinference_either_order_on_both_engines(order: str, make_lm: Any, unique: str) -> None:
    """The fast guard of the layering, in this process, on both DSPy engines: one lmscope LM span per call with the
    LM's own usage, OpenInference's `LM.__call__` span around it; OpenInference leaving first keeps lmscope's
    wrappers, and lmscope leaving then puts back DSPy's own methods (OpenInference leaving last would not: it strips
    DSPy's `with_callbacks`, docs/dspy-internals.md §10)."""
    import dspy
    from dspy.clients.base_lm import BaseLM
    from dspy.primitives.module import Module
    from openinference.instrumentation.dspy import DSPyInstrumentor as OpenInferenceInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    watched = [(Module, "__call__"), (Module, "acall"), (BaseLM, "__call__"), (BaseLM, "acall"), (dspy.LM, "__call__")]
    before = [vars(cls).get(name) for cls, name in watched]
    # OpenInference's uninstrument strips DSPy's own decorators from the methods only it wraps (`Adapter.__call__`):
    # put those back afterwards, for the tests that run next in this process.
    touched = [Module, BaseLM, dspy.LM, dspy.Predict, dspy.Retrieve, dspy.Adapter, dspy.Tool, dspy.utils.DummyLM,
               dspy.ColBERTv2]
    saved = {cls: dict(vars(cls)) for cls in touched}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ours, theirs = DSPyInstrumentor(), OpenInferenceInstrumentor()
    steps = [lambda: theirs.instrument(tracer_provider=provider),
             lambda: ours.instrument(provider.get_tracer("lmscope"), capture_content=False)]
    for step in steps if order == "first" else steps[::-1]:
        step()
    try:
        lm = make_lm()
        predict = dspy.Predict("question -> answer")
        with dspy.context(lm=lm):
            predict(question=f"Capital of France? {unique}")
            theirs.uninstrument()
            predict(question=f"Capital of Japan? {unique}")
    finally:
        if theirs.is_instrumented_by_opentelemetry:
            theirs.uninstrument()
        ours.uninstrument()
        after = [vars(cls).get(name) for cls, name in watched]
        for cls, attributes in saved.items():
            for name, value in attributes.items():
                if name not in ("__dict__", "__weakref__") and vars(cls).get(name) is not value:
                    setattr(cls, name, value)
    llm = [span for span in exporter.get_finished_spans() if span.attributes.get(semconv.SPAN_KIND) == "LLM"]
    assert [span.name for span in llm] == ["chat gpt-4o-mini", "LM.__call__", "chat gpt-4o-mini"]
    assert llm[0].parent.span_id == llm[1].context.span_id  # OpenInference's span encloses lmscope's
    usage = [entry["usage"] for entry in lm.history[-2:]]
    assert [span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for span in (llm[0], llm[2])] == [
        entry["prompt_tokens"] for entry in usage]
    assert after == before
