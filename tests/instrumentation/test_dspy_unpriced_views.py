"""A real DSPy program with an LM nobody has a price for: the console tree and `lmscope report` say `unpriced`
for its calls, never $0.000000, on both engines against the stand-in LM server."""

from __future__ import annotations

import io
import re

import dspy
import pytest
from dspy_release import DEFAULT_ENGINE, ENGINES, engine_options
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.telemetry._exporters.console import ConsoleTreeProcessor
from lmscope.telemetry._report import render_report, summarize
from lmscope.telemetry._trace_file import records_from_spans

UNPRICED_MODEL = "lmscope-unpriced-model"


def _lm(lm_server, engine, model):
    options = {"api_base": lm_server.base_url, "api_key": "sk-test", **engine_options(engine)}
    return dspy.LM(f"openai/{model}", **options)


def _cost_cells(lines):
    """{row key: cost cell} of a report table or tree's lines: cells are two or more spaces apart."""
    return {re.split(r"\s{2,}", line)[0]: line for line in lines}


@pytest.mark.parametrize("engine", [DEFAULT_ENGINE, *(pytest.param(e, marks=pytest.mark.slow) for e in ENGINES[1:])])
def test_unpriced_calls_read_unpriced_in_console_tree_and_report(lm_server, engine, rag, unique):
    console = io.StringIO()
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(ConsoleTreeProcessor(console))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=False)
    try:
        dspy.configure(lm=_lm(lm_server, engine, UNPRICED_MODEL))
        rag.rewrite.set_lm(_lm(lm_server, engine, "gpt-4o-mini"))  # one priced call: the root is mixed
        rag(question=f"What is the capital of France? {unique}")
    finally:
        instrumentor.uninstrument()
        dspy.configure(lm=None, adapter=None, track_usage=False, callbacks=[])
        provider.shutdown()

    # The console tree, as printed when the root ended.
    tree = console.getvalue()
    rows = {re.sub(r"^[│├└─ ]+", "", line).split("  ")[0]: line.rstrip() for line in tree.splitlines()[1:]}
    assert set(rows) == {"rag", "rag.rewrite", "chat gpt-4o-mini", "rag.retrieve", "rag.answer",
                         "rag.answer.predict", f"chat {UNPRICED_MODEL}"}, tree
    assert rows[f"chat {UNPRICED_MODEL}"].endswith("  unpriced") and "+ unpriced" not in rows[f"chat {UNPRICED_MODEL}"]
    for path in ("rag.answer", "rag.answer.predict"):  # every call below them is unpriced
        assert rows[path].endswith("  unpriced") and "$" not in rows[path], tree
    assert re.search(r"\$0\.\d{6} \+ unpriced$", rows["rag"]), tree  # the known part, marked
    assert re.search(r"\$0\.\d{6}$", rows["chat gpt-4o-mini"].rstrip()) and "unpriced" not in rows["rag.rewrite"]
    assert "$0.000000" not in tree, tree  # no cache hit in this run: nothing costs a known $0

    # `lmscope report` over the same spans.
    report = summarize(records_from_spans(memory.get_finished_spans()))
    assert report.total.calls == 2 and report.total.unpriced_calls == 1 and report.total.cost_usd > 0
    text = render_report(report)
    tables = [block.splitlines() for block in text.split("\n\n")[1:]]
    for table in tables:
        header = re.split(r"\s{2,}", table[0].strip())
        assert header[-1] == "unpriced" and "unknown cost" not in table[0]
        cells = {row[0]: dict(zip(header, row, strict=True))
                 for row in (re.split(r"\s{2,}", line.strip()) for line in table[2:] if not line.startswith("-"))}
        cost = {key: row["cost USD"] for key, row in cells.items()}
        assert cost["total"].endswith(" + unpriced") and cost["total"] != "$0.000000 + unpriced", text
        assert "$0.000000" not in cost.values(), text
        assert cells["total"]["unpriced"] == "1"
    by_model = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line) for line in tables[0]}
    assert by_model[UNPRICED_MODEL][5] == "unpriced", text
    assert by_model["gpt-4o-mini"][5].startswith("$0.") and by_model["gpt-4o-mini"][5] != "$0.000000", text
    by_module = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line) for line in tables[1]}
    assert by_module["rag.answer.predict"][5] == "unpriced", text
    assert by_module["rag.rewrite"][5].startswith("$0.") and "unpriced" not in by_module["rag.rewrite"][5], text
