"""`lmscope report`'s optimization section: per compile its optimizer, trials, best score and spend; per evaluation
its score and spend; spend by `lmscope.phase`. Text and HTML (in headless Chromium) agree with the spans to the cent.

The spans are made with the real OpenTelemetry SDK and written by lmscope's file exporter. The compile spans
(`optimize {Optimizer}`, `trial {i}`) are synthesized here with the attribute names the compile instrumentation
writes (lmscope/telemetry/_semconv.py), since that instrumentation is built in parallel; the Evaluate spans have the
shape `tests/instrumentation/test_dspy_evaluate.py` proves real DSPy runs produce. Costs are binary fractions
(0.25, 0.125, ...) so every sum is exact and compared with `==`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import set_span_in_context
from span_attributes import lm_attributes

from lmscope._cli import main
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter
from lmscope.telemetry._report import render_report, summarize
from lmscope.telemetry._report_html import render_html
from lmscope.telemetry._report_optimization import CompileSummary, EvaluationSummary
from lmscope.telemetry._report_page import gather_page
from lmscope.telemetry._spend import Spend
from lmscope.telemetry._trace_file import read_trace_file
from lmscope.telemetry._tree import format_usd

TRIAL_SCORES = [50.0, 75.0, 62.5]
COMPILE_ROLLUPS = {semconv.LM_CALLS: 7, semconv.USAGE_INPUT_TOKENS: 800, semconv.USAGE_OUTPUT_TOKENS: 80,
                   semconv.COST_TOTAL_USD: 1.125, semconv.CACHE_HITS: 1}
"""What the compile instrumentation writes on the root: the roll-ups of the LM calls below, as module spans do."""


def _write_trace_file(path: Path) -> None:
    exporter = OtlpJsonFileExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    def span(name: str, parent: Any, attributes: dict[str, Any]) -> Any:
        return tracer.start_span(name, set_span_in_context(parent) if parent is not None else None,
                                 attributes=attributes)

    def lm(parent: Any, phase: str, input_tokens: int, output_tokens: int, cost: float, **extra: Any) -> None:
        span("chat gpt-4o-mini", parent, lm_attributes("gpt-4o-mini", input_tokens, output_tokens, cost=cost,
                                                       **{semconv.PHASE: phase, **extra})).end()

    def evaluation(parent: Any, phase: str, score: float, costs: list[float], errors: int = 0) -> None:
        evaluate = span("evaluate", parent, {
            semconv.SPAN_KIND: semconv.KIND_EVALUATOR, semconv.PHASE: phase, semconv.EVALUATION_METRIC: "exact",
            semconv.EVALUATION_EXAMPLES: len(costs), semconv.EVALUATION_ERRORS: errors,
            semconv.EVALUATE_SCORE: score})
        for index, cost in enumerate(costs):
            example = span(f"example {index}", evaluate, {semconv.SPAN_KIND: semconv.KIND_CHAIN,
                                                          semconv.PHASE: phase})
            lm(example, phase, 100, 10, cost)
            # A metric span is an EVALUATOR too: it must not count as an evaluation of its own.
            metric = span("metric exact", example, {semconv.SPAN_KIND: semconv.KIND_EVALUATOR, semconv.PHASE: phase,
                                                    semconv.EVALUATION_METRIC_VALUE: 1.0})
            metric.end()
            example.end()
        evaluate.end()

    # Trace 1: a compile. A bootstrap step's LM call (a cache hit), then 3 trials, each an evaluation on 2 examples.
    root = span("optimize BootstrapFewShotWithRandomSearch", None, {
        semconv.PHASE: "optimize", semconv.OPTIMIZER_NAME: "BootstrapFewShotWithRandomSearch",
        semconv.OPTIMIZER_BEST_SCORE: 75.0, **COMPILE_ROLLUPS})
    bootstrap = span("bootstrap 0", root, {semconv.PHASE: "optimize"})
    lm(bootstrap, "optimize", 200, 20, 0.0, **{semconv.CACHE_HIT: True, semconv.CACHE_SAVED_USD: 0.5})
    bootstrap.end()
    for index, score in enumerate(TRIAL_SCORES):
        trial = span(f"trial {index}", root, {semconv.PHASE: "optimize", semconv.OPTIMIZER_TRIAL: index,
                                              semconv.OPTIMIZER_SCORE: score,
                                              semconv.OPTIMIZER_BEST_SO_FAR: score == max(TRIAL_SCORES[:index + 1])})
        evaluation(trial, "optimize", score, [0.25, 0.125])
        trial.end()
    root.end()
    # Trace 2: an evaluation outside any compile, one example of three failed.
    evaluation(None, "evaluate", 66.67, [0.0625, 0.0625, 0.0625], errors=1)
    # Trace 3: serving.
    lm(None, "serve", 50, 5, 0.5)
    provider.shutdown()


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "optimize.jsonl"
    _write_trace_file(path)
    return path


def test_compiles_evaluations_and_phases_are_summed_from_their_lm_spans(trace_file: Path) -> None:
    report = summarize(read_trace_file(trace_file))

    trial_evaluation = Spend(calls=2, input_tokens=200, output_tokens=20, cost_usd=0.375)
    assert report.compiles == [CompileSummary(
        optimizer="BootstrapFewShotWithRandomSearch", start_ns=report.compiles[0].start_ns, best_score=75.0,
        trials=[(0, 50.0), (1, 75.0), (2, 62.5)],
        spend=Spend(calls=7, input_tokens=800, output_tokens=80, cost_usd=1.125, cache_hits=1, saved_usd=0.5))]
    # The report sums the LM spans below the root: the root's own roll-ups say the same.
    spend = report.compiles[0].spend
    assert (spend.calls, spend.input_tokens, spend.output_tokens, spend.cost_usd, spend.cache_hits) == \
        tuple(COMPILE_ROLLUPS.values())
    assert report.evaluations == [
        *(EvaluationSummary(metric="exact", start_ns=report.evaluations[i].start_ns, phase="optimize", examples=2,
                            errors=0, score=score, spend=trial_evaluation) for i, score in enumerate(TRIAL_SCORES)),
        EvaluationSummary(metric="exact", start_ns=report.evaluations[3].start_ns, phase="evaluate", examples=3,
                          errors=1, score=66.67,
                          spend=Spend(calls=3, input_tokens=300, output_tokens=30, cost_usd=0.1875)),
    ]
    assert report.by_phase == {
        "optimize": Spend(calls=7, input_tokens=800, output_tokens=80, cost_usd=1.125, cache_hits=1, saved_usd=0.5),
        "serve": Spend(calls=1, input_tokens=50, output_tokens=5, cost_usd=0.5),
        "evaluate": Spend(calls=3, input_tokens=300, output_tokens=30, cost_usd=0.1875),
    }
    assert list(report.by_phase) == ["optimize", "serve", "evaluate"]  # costliest first
    # Phases split the whole: nothing is counted twice or left out.
    whole = Spend()
    for spend in report.by_phase.values():
        whole.add(spend)
    assert whole == report.total


def test_text_report_has_phase_compile_and_evaluation_tables(trace_file: Path, capsys: pytest.CaptureFixture[str],
                                                             ) -> None:
    assert main(["report", str(trace_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip("\n") == render_report(summarize(read_trace_file(trace_file)))
    assert """
phase     calls  input  output  cached   cost USD  cache hits  saved USD  unpriced
--------  -----  -----  ------  ------  ---------  ----------  ---------  --------
optimize      7    800      80       0  $1.125000           1  $0.500000         0
serve         1     50       5       0  $0.500000           0  $0.000000         0
evaluate      3    300      30       0  $0.187500           0  $0.000000         0
--------  -----  -----  ------  ------  ---------  ----------  ---------  --------
total        11   1150     115       0  $1.812500           1  $0.500000         0

compile                           trials  best score  calls  input  output  cached   cost USD  cache hits  saved USD  \
unpriced
--------------------------------  ------  ----------  -----  -----  ------  ------  ---------  ----------  ---------  \
--------
BootstrapFewShotWithRandomSearch       3          75      7    800      80       0  $1.125000           1  $0.500000  \
       0

evaluation     phase  examples  errors  score  calls  input  output  cached   cost USD  cache hits  saved USD  unpriced
----------  --------  --------  ------  -----  -----  -----  ------  ------  ---------  ----------  ---------  --------
exact       optimize         2       0     50      2    200      20       0  $0.375000           0  $0.000000         0
exact       optimize         2       0     75      2    200      20       0  $0.375000           0  $0.000000         0
exact       optimize         2       0   62.5      2    200      20       0  $0.375000           0  $0.000000         0
exact       evaluate         3       1  66.67      3    300      30       0  $0.187500           0  $0.000000         0
""" in printed


@pytest.mark.chromium
def test_html_draws_each_trials_score_next_to_the_compiles_cost(trace_file: Path, tmp_path: Path,
                                                                chromium: Any) -> None:
    page = tmp_path / "report.html"
    assert main(["report", str(trace_file), "--html", str(page)]) == 0
    report = summarize(read_trace_file(trace_file))
    dom = chromium.dom(page)

    compile_ = dom.by_id("compile-1")
    assert compile_.find("figcaption").text().startswith("BootstrapFewShotWithRandomSearch")
    assert compile_.find(cls="compile-cost").text() == format_usd(1.125) == format_usd(report.compiles[0].spend.cost_usd)
    assert compile_.find(cls="compile-facts").text() == \
        "3 trials · best score 75 · 7 LM calls · 800 in · 80 out · 1 cache hit"
    points = compile_.find("svg").find_all("circle", "trial")
    assert [(p.attrs["data-trial"], p.attrs["data-score"]) for p in points] == [("0", "50"), ("1", "75"), ("2", "62.5")]
    # Drawn in trial order, left to right, higher scores higher up (SVG's y grows downwards).
    xs = [float(p.attrs["cx"]) for p in points]
    ys = [float(p.attrs["cy"]) for p in points]
    assert xs == sorted(xs) and ys[1] < ys[2] < ys[0]
    assert [p.find("title").text() for p in points] == ["trial 0: 50", "trial 1: 75", "trial 2: 62.5"]

    phases = {row.find(cls="bar-label").text(): row.find(cls="amount").text()
              for row in dom.by_id("cost-by-phase").find_all(cls="bar-row")}
    assert phases == {phase: format_usd(spend.cost_usd) for phase, spend in report.by_phase.items()}
    rows = [[cell.text() for cell in row.find_all("td")] for row in dom.by_id("evaluations").find("tbody").elements()]
    assert rows == [["exact", "optimize", "2", "0", score, format_usd(0.375), "2"] for score in ("50", "75", "62.5")] \
        + [["exact", "evaluate", "3", "1", "66.67", format_usd(0.1875), "3"]]
    assert not dom.find_all("script")

    # The chart's line is drawn: its colour is in the screenshot.
    from lmscope.telemetry._report_html_style import PALETTE

    image = chromium.screenshot(page)
    colour = tuple(int(PALETTE["trial-score"][i:i + 2], 16) for i in (1, 3, 5))
    assert any(pixel == colour for pixel in image.getdata())


def test_a_file_without_compiles_or_phases_has_no_optimization_section(tmp_path: Path) -> None:
    exporter = OtlpJsonFileExporter(tmp_path / "plain.jsonl")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span("chat gpt-4o-mini", attributes=lm_attributes("gpt-4o-mini", 1, 1,
                                                                                         cost=0.5)).end()
    provider.shutdown()
    records = read_trace_file(tmp_path / "plain.jsonl")
    assert "phase" not in render_report(summarize(records)) and "compile" not in render_report(summarize(records))
    assert 'id="optimization"' not in render_html(gather_page(records, "plain.jsonl"))
