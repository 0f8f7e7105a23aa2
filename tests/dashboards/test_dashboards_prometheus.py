"""The dashboards against a real Prometheus: every panel's query answers, and the figures equal the spans.

Debian's `prometheus` (installed by .ci/test.sh) runs on 127.0.0.1 and scrapes lmscope's own endpoint
(metrics_exporters=["prometheus"]) every second while the demo's DSPy program runs in its own interpreter
against the stand-in LM server, in five steps a scrape or more apart: the demo's four runs (fresh calls,
memory-cache hits, dspy.context, a threaded batch), disk-cache hits and a new question, a `dspy.Evaluate` run
(lmscope.phase "evaluate"), a `BootstrapFewShot` compile ("optimize"; the rest is "serve"), and a call to an LM
whose server refuses connections. The same run writes its spans to a trace file.

Grafana cannot run here, so the test does what Grafana does with each panel: fill in the variables (the run's
service and model, or ".*" for "All") and the macros, then send stat and bar-gauge queries to /api/v1/query at
the end of the run with $__range covering it, and time-series queries to /api/v1/query_range with a 1 s step
($__interval 1s, $__rate_interval 4s as Grafana computes it for a 1 s scrape interval).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._report import Report, summarize
from lmscope.telemetry._trace_file import read_trace_file

APP = Path(__file__).with_name("demo_workload_app.py")
MODEL = "gpt-4o-mini"
PHASES = ("demo", "later", "evaluate", "optimize", "fail")
STEP_S = 1
RANGE_MACROS = {"__interval": f"{STEP_S}s", "__rate_interval": f"{4 * STEP_S}s"}


@dataclass
class Run:
    prometheus: Any  # conftest.PrometheusServer
    service: str
    start: float
    """Before the first phase: no lmscope series existed yet."""
    phase_start: dict[str, float]
    end: float
    """After the scrape that saw the last phase, plus a step."""
    spans: list
    app_output: str


def _read_until(app: subprocess.Popen, prefix: str, seen: list[str]) -> str:
    for line in app.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise AssertionError(f"the app stopped before printing {prefix!r}:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def run(lm_server, start_prometheus, free_port, tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("demo-run")
    trace_file, service = folder / "traces.jsonl", f"lmscope-dashboards-{uuid.uuid4().hex[:8]}"
    dead_lm = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: the LM call fails to connect
    env = {**os.environ, "DSPY_CACHEDIR": str(folder / "dspy-cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    app = subprocess.Popen([sys.executable, str(APP), lm_server.base_url, dead_lm, str(trace_file), service],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env)
    seen: list[str] = []
    watchdog = threading.Timer(300, app.kill)  # a hung app ends the reads below instead of the test run
    watchdog.start()
    try:
        prometheus = start_prometheus(_read_until(app, "METRICS ", seen))
        prometheus.wait_for_scrape_after(time.time())  # the target is up
        start, phase_start = time.time(), {}
        for phase in PHASES:
            phase_start[phase] = time.time()
            app.stdin.write(phase + "\n")
            app.stdin.flush()
            _read_until(app, f"DONE {phase}", seen)
            last = prometheus.wait_for_scrape_after(time.time())
        time.sleep(max(0.0, last + 1.5 * STEP_S - time.time()))
        end = time.time()
        app.stdin.write("exit\n")
        app.stdin.flush()
        seen.append(app.stdout.read())
        assert app.wait(timeout=60) == 0, "".join(seen)
    finally:
        watchdog.cancel()
        if app.poll() is None:
            app.kill()
            app.wait()
    return Run(prometheus, service, start, phase_start, end, read_trace_file(trace_file), "".join(seen))


# --- running panels as Grafana would --------------------------------------------------------------------


def _regex_escape(value: str) -> str:
    """A variable's value as Grafana puts it in a PromQL regex: metacharacters behind an escaped backslash."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def _variables(run: Run, everything: bool) -> dict[str, str]:
    if everything:
        return {"service": ".*", "model": ".*"}
    return {"service": _regex_escape(run.service), "model": _regex_escape(MODEL)}


def _answer(run: Run, grafana, query: dict, everything: bool = False, since: float | None = None) -> list[dict]:
    """The panel query's result: instant at the run's end over $__range (from `since`, default the run's
    start), or a range query over the run for time series."""
    values = _variables(run, everything)
    if query["instant"]:
        range_ms = math.ceil((run.end - (run.start if since is None else since)) * 1000)
        expr = grafana.interpolate(query["expr"], {**values, "__range": f"{range_ms}ms"})
        return run.prometheus.query(expr, run.end)
    expr = grafana.interpolate(query["expr"], {**values, **RANGE_MACROS})
    return run.prometheus.query_range(expr, run.start, run.end, STEP_S)


def _finite(result: list[dict]) -> list[float]:
    points = [sample["value"] for sample in result if "value" in sample]
    points += [point for sample in result for point in sample.get("values", [])]
    return [float(v) for _, v in points if math.isfinite(float(v))]


def _panel(dashboards, board: str, title: str) -> dict:
    [panel] = [p for p in dashboards[board]["panels"] if p["title"] == title]
    return panel


def _figures(run: Run, grafana, dashboards, board: str, title: str, by: str | tuple[str, ...] | None = None,
             **options) -> dict[object, float]:
    """{key: value} of a panel: an instant query's value, or the sum of a time series' points, per series.
    The key is the target's legendFormat, a label's value (`by` a name) or a tuple of them ("" when absent)."""
    found: dict[object, float] = {}
    for query in _panel(dashboards, board, title)["targets"]:
        for sample in _answer(run, grafana, query, **options):
            labels = sample["metric"]
            key = (query["legendFormat"] if by is None else labels.get(by, "") if isinstance(by, str)
                   else tuple(labels.get(name, "") for name in by))
            points = [sample["value"]] if "value" in sample else sample["values"]
            assert key not in found, (title, key)
            found[key] = sum(float(v) for _, v in points)
    return found


# --- what the spans say -----------------------------------------------------------------------------------


@dataclass
class SpanFacts:
    """The run as its spans tell it: `lmscope report`'s summary (spend, tokens, cache hits and dollars saved,
    by model, by module path and in total) and what that summary does not count."""

    report: Report
    calls_with_usage: int = 0
    failed_calls: Counter = field(default_factory=Counter)
    """error type -> LM calls that raised."""
    cache_lookups: Counter = field(default_factory=Counter)
    """(hit|miss, cache layer or "") -> LM calls that consulted DSPy's cache."""
    saved_tokens: int = 0
    failed_modules: Counter = field(default_factory=Counter)
    """(module path, error type) -> module calls that raised."""

    @property
    def provider_calls(self) -> int:
        return self.calls_with_usage + sum(self.failed_calls.values())

    @property
    def hits(self) -> dict[str, int]:
        return {layer: n for (result, layer), n in self.cache_lookups.items() if result == "hit"}


def _span_facts(spans, since: float = 0.0) -> SpanFacts:
    chosen = [span for span in spans if span.start_ns >= since * 1e9]
    facts = SpanFacts(summarize(chosen))
    for span in chosen:
        attributes = span.attributes
        error = attributes.get(semconv.ERROR_TYPE)
        if attributes.get(semconv.SPAN_KIND) != semconv.KIND_LLM:
            if error is not None and semconv.MODULE_PATH in attributes:
                facts.failed_modules[attributes[semconv.MODULE_PATH], error] += 1
            continue
        hit = attributes.get(semconv.CACHE_HIT)
        if hit is not None:
            facts.cache_lookups["hit" if hit else "miss", attributes.get(semconv.CACHE_LAYER, "")] += 1
        if hit:
            facts.saved_tokens += attributes[semconv.CACHE_SAVED_TOKENS]
        elif error is not None:
            facts.failed_calls[error] += 1
        else:
            facts.calls_with_usage += 1
    return facts


def usd(value: float) -> object:
    """Equal to the cent, as the issue asks, and in fact to a billionth of a cent."""
    return pytest.approx(value, rel=1e-9, abs=1e-11)


# --- the tests --------------------------------------------------------------------------------------------


def test_the_run_covers_what_the_panels_show(run):
    """The workload itself: fresh calls, hits from both cache layers, a failed call, spend in every phase."""
    facts = _span_facts(run.spans)
    total = facts.report.total
    assert facts.calls_with_usage >= 8 and total.cost_usd > 0 and total.cached_tokens > 0
    assert set(facts.hits) == {"memory", "disk"} and total.saved_usd > 0 and facts.saved_tokens > 0
    assert sum(facts.failed_calls.values()) == 1 and facts.failed_modules and "FAILED" in run.app_output
    for phase in PHASES[1:]:
        assert _span_facts(run.spans, since=run.phase_start[phase]).provider_calls > 0, phase
    assert {span.resource["service.name"] for span in run.spans} == {run.service}


@pytest.mark.parametrize("everything", [False, True], ids=["run's service and model", "All"])
def test_every_panel_query_answers_with_data(run, grafana, dashboards, everything):
    empty = []
    for name, board in dashboards.items():
        for panel, query in grafana.queries(board):
            if not _finite(_answer(run, grafana, query, everything=everything)):
                empty.append(f"{name}: {panel['title']} [{query['refId']}]")
    assert empty == [], f"no data from Prometheus {run.prometheus.version}: {empty}"


def test_variables_offer_the_runs_service_and_model(run, grafana, dashboards):
    for board in dashboards.values():
        for variable in board["templating"]["list"]:
            selector, label = grafana.label_values(variable["query"])
            selector = grafana.interpolate(selector, _variables(run, everything=False))
            offered = run.prometheus.api(f"/api/v1/label/{label}/values",
                                         **{"match[]": selector, "start": run.start, "end": run.end})
            assert offered == {"service": [run.service], "model": [MODEL]}[variable["name"]]


def test_dashboards_use_only_metric_names_prometheus_stored(run, grafana, dashboards):
    stored = set(run.prometheus.api("/api/v1/label/__name__/values"))
    used = {metric for board in dashboards.values() for _, query in grafana.queries(board)
            for metric in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", query["expr"])}
    assert used and used <= stored, used - stored


def test_cost_figures_equal_the_spans(run, grafana, dashboards):
    facts = _span_facts(run.spans)
    total, per_call = facts.report.total, facts.report.total.cost_usd / facts.calls_with_usage
    figures = lambda title, by=None: _figures(run, grafana, dashboards, "cost.json", title, by)  # noqa: E731
    assert figures("Spend") == {"spend": usd(total.cost_usd)}
    assert figures("LM calls") == {"calls": facts.calls_with_usage}
    assert figures("Cost per LM call") == {"per call": usd(per_call)}
    tokens = {"input": total.input_tokens, "output": total.output_tokens, "cached": total.cached_tokens}
    assert figures("Tokens") == tokens
    by_module = {path: usd(spend.cost_usd) for path, spend in facts.report.by_module.items() if spend.cost_usd}
    assert figures("Top modules by cost", "lmscope_module_path") == by_module
    assert figures("Cost per LM call by model", "gen_ai_request_model") == {MODEL: usd(per_call)}
    # Time series: the bars of the 1 s steps add up to the same totals.
    assert figures("Spend by model", "gen_ai_request_model") == {
        model: usd(spend.cost_usd) for model, spend in facts.report.by_model.items()}
    assert figures("Spend by module path", "lmscope_module_path") == by_module
    assert figures("Spend by service", "service_name") == {run.service: usd(total.cost_usd)}
    assert figures("Tokens over time") == tokens
    # Spend by lmscope.phase: the Evaluate run and the compile apart from serving.
    assert set(facts.report.by_phase) == {"serve", "evaluate", "optimize"}
    assert figures("Spend by phase", "lmscope_phase") == {
        phase: usd(spend.cost_usd) for phase, spend in facts.report.by_phase.items()}
    input_query, output_query = _panel(dashboards, "cost.json", "Tokens by phase")["targets"]
    for query, tokens_of in ((input_query, lambda spend: spend.input_tokens),
                             (output_query, lambda spend: spend.output_tokens)):
        shown = {sample["metric"]["lmscope_phase"]: sum(float(v) for _, v in sample["values"])
                 for sample in _answer(run, grafana, query)}
        assert shown == {phase: tokens_of(spend) for phase, spend in facts.report.by_phase.items()}
    # What the spend bought: the latest score per metric is the one the Evaluate span recorded (the run's metric is
    # a lambda), and the score over time never shows another value.
    scores = {str(span.attributes[semconv.EVALUATION_METRIC]): span.attributes[semconv.EVALUATE_SCORE]
              for span in run.spans if semconv.EVALUATE_SCORE in span.attributes}
    assert scores == {"<lambda>": 100.0}
    assert figures("Latest evaluation scores", "lmscope_evaluation_metric") == scores
    (query,) = _panel(dashboards, "cost.json", "Evaluation scores")["targets"]
    shown = {(sample["metric"]["lmscope_evaluation_metric"], sample["metric"]["lmscope_phase"]):
             {float(value) for _, value in sample["values"]} for sample in _answer(run, grafana, query)}
    assert shown == {("<lambda>", "evaluate"): {100.0}}


def test_cache_figures_equal_the_spans(run, grafana, dashboards):
    facts = _span_facts(run.spans)
    total, lookups = facts.report.total, sum(facts.cache_lookups.values())
    figures = lambda title, by=None: _figures(run, grafana, dashboards, "cache.json", title, by)  # noqa: E731
    assert figures("Calls saved") == {"cache hits": total.cache_hits} == {"cache hits": sum(facts.hits.values())}
    assert figures("Hit ratio") == {"hit ratio": pytest.approx(total.cache_hits / lookups, rel=1e-12)}
    assert figures("Dollars saved") == {"saved": usd(total.saved_usd)}
    assert figures("Tokens saved") == {"saved": facts.saved_tokens}
    assert figures("Hit ratio by layer", "lmscope_cache_layer") == {
        layer: pytest.approx(n / lookups, rel=1e-12) for layer, n in facts.hits.items()}
    assert figures("Cache lookups", ("lmscope_cache_result", "lmscope_cache_layer")) == dict(facts.cache_lookups)
    assert figures("Dollars saved by model", "gen_ai_request_model") == {
        model: usd(spend.saved_usd) for model, spend in facts.report.by_model.items()}
    assert figures("Dollars saved by module path", "lmscope_module_path") == {
        path: usd(spend.saved_usd) for path, spend in facts.report.by_module.items() if spend.saved_usd}


def test_latency_and_error_figures_match_the_spans(run, grafana, dashboards):
    facts = _span_facts(run.spans)
    figures = lambda title, by=None: _figures(run, grafana, dashboards, "latency.json", title, by)  # noqa: E731
    assert figures("LM calls") == {"calls": facts.provider_calls}
    assert figures("Failed LM calls") == {"failed": sum(facts.failed_calls.values())} == {"failed": 1}
    assert figures("Failed module calls") == {"failed": sum(facts.failed_modules.values())}
    assert figures("Errors by type", ("lmscope_module_path", "error_type")) == {
        **{("", error): n for error, n in facts.failed_calls.items()}, **facts.failed_modules}
    # Latency: 0 < p50 <= p95 <= the upper bound of the histogram bucket that holds the slowest LM span.
    slowest = max(span.duration_ms / 1e3 for span in run.spans
                  if span.attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM
                  and not span.attributes.get(semconv.CACHE_HIT))
    bounds = run.prometheus.api("/api/v1/label/le/values", **{
        "match[]": 'gen_ai_client_operation_duration_seconds_bucket{otel_scope_name="lmscope"}'})
    upper = min(float(bound) for bound in bounds if float(bound) >= slowest)
    latency = figures("LM call latency")
    assert 0 < latency["p50"] <= latency["p95"] <= upper


def test_a_time_range_starting_mid_run_shows_only_what_happened_in_it(run, grafana, dashboards):
    """$__range from the second phase on: what the counters held before it is subtracted, exactly."""
    since = run.phase_start["later"]
    later, everything = _span_facts(run.spans, since=since).report.total, _span_facts(run.spans).report.total
    assert 0 < later.cost_usd < everything.cost_usd and 0 < later.cache_hits < everything.cache_hits
    figures = lambda board, title: _figures(run, grafana, dashboards, board, title, since=since)  # noqa: E731
    assert figures("cost.json", "Spend") == {"spend": usd(later.cost_usd)}
    assert figures("cost.json", "Tokens") == {"input": later.input_tokens, "output": later.output_tokens,
                                              "cached": later.cached_tokens}
    assert figures("cache.json", "Calls saved") == {"cache hits": later.cache_hits}
    assert figures("cache.json", "Dollars saved") == {"saved": usd(later.saved_usd)}
