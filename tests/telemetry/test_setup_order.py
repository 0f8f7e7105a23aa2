"""Setup order never matters: lmscope next to an app's own TracerProvider or Logfire, instrumented before or after.

Each case runs in a fresh interpreter (the API's global provider can be set once per process): a real DSPy program
(DummyLM answers) inside an app span, with an app span inside a lmscope module span, the app's exporter an
InMemorySpanExporter on its provider (plain SDK, or Logfire's `additional_span_processors`), lmscope's the `file`
exporter. The app's exporter must get every span once, lmscope's only lmscope's (all with `export_all_spans`), the
app's `set_tracer_provider` must not be refused, and the spans must form one trace across both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from app_env import app_env

pytestmark = pytest.mark.usefixtures("clean_env")

APP = r"""
import json, logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import lmscope
from lmscope.telemetry._trace_file import read_trace_file

order, kind, export_all, trace_file = sys.argv[1], sys.argv[2], sys.argv[3] == "all", sys.argv[4]
refusals = []
class Refusals(logging.Handler):
    def emit(self, record):
        refusals.append(record.getMessage())
logging.getLogger("opentelemetry").addHandler(Refusals(level=logging.WARNING))

app_spans = InMemorySpanExporter()
app_provider = None

def set_up_the_app():
    global app_provider
    if kind == "sdk":
        app_provider = TracerProvider()
        app_provider.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(app_provider)
    else:
        import logfire
        logfire.configure(send_to_logfire=False, console=False, inspect_arguments=False,
                          additional_span_processors=[SimpleSpanProcessor(app_spans)])

if order == "app-first":
    set_up_the_app()
lmscope.instrument(exporters="file", file_path=trace_file, **({"export_all_spans": True} if export_all else {}))
if order == "lmscope-first-app-before-dspy":  # lmscope sees the app's provider when it gives DSPy its tracer
    set_up_the_app()
import dspy
from dspy.utils import DummyLM
if order == "lmscope-first":  # DSPy traced already: lmscope sees the app's provider at its next span
    set_up_the_app()

app_tracer = trace.get_tracer("the-app")

class Answer(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        with app_tracer.start_as_current_span("app inside"):  # an app span under lmscope's module span
            return self.predict(question=question)

dspy.configure(lm=DummyLM({"": {"answer": "42"}}))
program = Answer()
with app_tracer.start_as_current_span("app request"):
    program(question="What is six times seven?")
lmscope.force_flush()
if app_provider is not None:
    app_provider.force_flush()
else:
    import logfire
    logfire.force_flush()

def describe(span):
    parent = span.parent.span_id if span.parent is not None else None
    return {"name": span.name, "scope": span.instrumentation_scope.name, "id": span.context.span_id,
            "trace": span.context.trace_id, "parent": parent}

global_provider = trace.get_tracer_provider()
print(json.dumps({
    "app": [describe(span) for span in app_spans.get_finished_spans()],
    "ours": [(int(r.span_id, 16), r.name) for r in read_trace_file(trace_file)],
    "refusals": refusals,
    "global_is_the_apps": global_provider is app_provider if kind == "sdk"
                          else type(global_provider).__module__.startswith("logfire"),
}))
"""

LMSCOPE_SCOPE = "lmscope.instrumentation.dspy"


def run_app(order: str, kind: str, tmp_path: Path, *, export_all: bool = False) -> dict[str, Any]:
    env = app_env("LMSCOPE_", "OTEL_", "LOGFIRE_")
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", DSPY_CACHEDIR=str(tmp_path / "dspy-cache"))
    done = subprocess.run([sys.executable, "-c", APP, order, kind, "all" if export_all else "ours",
                           str(tmp_path / "lmscope.jsonl")], capture_output=True, text=True, env=env, timeout=180,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    named = {span["name"]: span for span in spans}
    assert len(named) == len(spans), [span["name"] for span in spans]
    return named


ORDERS = ["app-first", "lmscope-first"]
APPS = ["sdk", "logfire"]


@pytest.mark.parametrize("kind", APPS)
@pytest.mark.parametrize("order", [*ORDERS, "lmscope-first-app-before-dspy"])
def test_each_span_once_to_the_apps_exporter_lmscopes_to_ours_in_one_trace(order: str, kind: str,
                                                                          tmp_path: Path) -> None:
    result = run_app(order, kind, tmp_path)

    assert (result["refusals"], result["global_is_the_apps"]) == ([], True)
    spans = result["app"]
    ids = [span["id"] for span in spans]
    assert len(ids) == len(set(ids)), "the app's exporter got a span twice"
    named = by_name(spans)
    assert {name: span["scope"] for name, span in named.items()} == {
        "app request": "the-app", "app inside": "the-app", "answer": LMSCOPE_SCOPE,
        "answer.predict": LMSCOPE_SCOPE, "chat dummy": LMSCOPE_SCOPE}
    file_spans = dict(result["ours"])
    assert len(file_spans) == len(result["ours"]), "lmscope's file got a span twice"
    assert file_spans == {span["id"]: span["name"] for span in spans if span["scope"] == LMSCOPE_SCOPE}

    assert len({span["trace"] for span in spans}) == 1
    parents = {name: span["parent"] for name, span in named.items()}
    assert parents["app request"] is None
    assert parents["answer"] == named["app request"]["id"]  # app span -> lmscope span
    assert parents["app inside"] == named["answer"]["id"]  # lmscope span -> app span
    assert parents["answer.predict"] == named["app inside"]["id"]  # and back
    assert parents["chat dummy"] == named["answer.predict"]["id"]


@pytest.mark.parametrize("order", ORDERS)
def test_export_all_spans_sends_the_apps_spans_through_ours_too(order: str, tmp_path: Path) -> None:
    result = run_app(order, "sdk", tmp_path, export_all=True)
    file_spans = dict(result["ours"])
    assert len(file_spans) == len(result["ours"]), "lmscope's file got a span twice"
    assert file_spans == {span["id"]: span["name"] for span in result["app"]}
    assert {"app request", "app inside"} <= set(file_spans.values())

