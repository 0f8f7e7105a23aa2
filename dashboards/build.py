"""Generate the Grafana dashboards of this folder: `python dashboards/build.py` rewrites cost.json, cache.json
and latency.json (`--check` only reports whether they are up to date).

Built with the Grafana Foundation SDK, pinned in lmscope's dev extra (`grafana-foundation-sdk==1769699379!11.6.0`:
the Grafana 11.6 builders; the highest version number on the index is an older 10.1 build, so an unpinned install
gets that). The JSON is committed, so users import it without the SDK; tests/dashboards fail when it differs from
what this script writes.

Every query reads lmscope's own series (`otel_scope_name="lmscope"`: LiteLLM and OpenLIT export some of the same
names) and never filters on `job`: the compose stack scrapes them from the collector (job = service name) or from
lmscope's endpoint (job lmscope). Template variables: `service` (the service_name label) and `model`
(gen_ai_request_model; module durations have no model and follow `service` only).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

FOLDER = Path(__file__).resolve().parent
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioned with this fixed uid
TAG = "lmscope"

# --- PromQL -------------------------------------------------------------------------------------------

SCOPE, SERVICE, MODEL = 'otel_scope_name="lmscope"', 'service_name=~"$service"', 'gen_ai_request_model=~"$model"'
RANGE, STEP, SMOOTH = "$__range", "$__interval", "$__rate_interval"
NO_MODULE = "(no module)"  # the name `lmscope report` gives LM calls made outside any DSPy module

COST = "gen_ai_usage_cost_USD_total"
TOKENS = "gen_ai_client_token_usage"  # histogram: _sum is tokens, _count is LM calls that returned usage
CACHED_TOKENS = "lmscope_usage_cached_tokens_total"
LM_DURATION = "gen_ai_client_operation_duration_seconds"  # _count is every provider call, failed ones too
CACHE_REQUESTS = "lmscope_cache_requests_total"
SAVED_USD, SAVED_TOKENS = "lmscope_cache_saved_USD_total", "lmscope_cache_saved_tokens_total"
MODULE_DURATION = "lmscope_module_duration_seconds"
EVALUATION_SCORE = "lmscope_evaluation_score_percent"  # gauge: the latest dspy.Evaluate score per metric and phase


def lm(metric: str, *matchers: str) -> str:
    """A selector of an LM-call metric, filtered by the service and model variables."""
    return f"{metric}{{{', '.join((SCOPE, SERVICE, MODEL, *matchers))}}}"


def module(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join((SCOPE, SERVICE, *matchers))}}}"


BASELINE_LOOKBACK = "1h"
"""How far before a window's start its baseline (the counter's last value there) is looked for."""


def increase(selector: str, window: str) -> str:
    """How much each counter series grew over `window`, exactly: its last value in the window minus its last value
    before the window (the baseline), or its whole value when it has no baseline or restarted from zero since.

    Prometheus's `increase()` extrapolates and never counts a series' first sample: a short DSPy run scraped two
    or three times would show a fraction of its spend, and a one-off error none at all. Last values come from
    `last_over_time`, so a process that exited inside the window still counts. The baseline is the last sample of
    the BASELINE_LOOKBACK before the window: a range selector skips the stale markers a failed scrape writes (an
    instant `offset` would find none there and count the counter's whole value again). No baseline (the series
    began inside the window, or after a gap longer than the lookback): the whole last value. A baseline above the
    window's lowest value means the counter restarted between the two (the app restarted; a window of one sample
    has no reset for `resets()` to see): the whole last value, the count since the restart. Consecutive windows
    share their boundary samples, so the bars of a time series add up to the range's total. `increase()` is used
    only where a counter reset between two samples inside the window, where no exact figure exists. A restart
    that is not seen (its first value already at or above the baseline) counts only the growth past the baseline.
    """
    last = f"last_over_time({selector}[{window}])"
    baseline = f"last_over_time({selector}[{BASELINE_LOOKBACK}] offset {window})"
    continued = f"({baseline} <= min_over_time({selector}[{window}]))"  # no restart since the baseline
    exact = f"(({last} - {continued}) or {last})"
    return f"(({exact} unless (resets({selector}[{window}]) > 0)) or increase({selector}[{window}]))"


def total(selector: str, window: str = RANGE, by: Sequence[str] = ()) -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} ({increase(selector, window)})"


def grown(expr: str) -> str:
    """`expr`'s series that grew: rankings list no 0-value bars for series idle in the time range."""
    return f"({expr} > 0)"


def divided(numerator: str, denominator: str, matching: str = "") -> str:
    """numerator / denominator where the denominator grew: an idle window shows no data, never NaN (0/0)."""
    return f"{numerator} /{matching} {grown(denominator)}"


def ratio(part: str, whole: str, window: str, by: Sequence[str] = ()) -> str:
    """part/whole of two counters' increases; 0 (not "no data") where `whole` grew and `part` did not."""
    return divided(f"({total(part, window, by)} or {total(whole, window, by)} * 0)", total(whole, window, by))


def quantile(q: float, histogram_bucket: str, window: str, by: Sequence[str] = ()) -> str:
    """The q-quantile of a histogram's observations in `window`; none (not NaN) where there were none."""
    return f"(histogram_quantile({q}, {total(histogram_bucket, window, ('le', *by))}) >= 0)"


def name_no_module(expr: str) -> str:
    """LM calls made outside any module have no module path label: show them under NO_MODULE."""
    return f'label_replace({expr}, "lmscope_module_path", "{NO_MODULE}", "lmscope_module_path", "")'


def top(expr: str, n: int = 10) -> str:
    return f"sort_desc(topk({n}, {expr}))"


# --- panels -------------------------------------------------------------------------------------------

Target = prometheus.Dataquery


def legend(label: str) -> str:
    """A legend showing a series' label value."""
    return "{{" + label + "}}"


def target(expr: str, legend_format: str, instant: bool = False) -> Target:
    query = Target().expr(expr).legend_format(legend_format).datasource(DATASOURCE)
    return query.instant() if instant else query.range()


def _with_targets(panel: Any, title: str, description: str, unit: str, targets: Sequence[Target]) -> Any:
    panel.title(title).description(description).datasource(DATASOURCE).unit(unit)
    for ref_id, query in zip("ABCDEFGH", targets):
        panel.with_target(query.ref_id(ref_id))
    return panel


def figure(title: str, description: str, unit: str, *targets: Target) -> stat.Panel:
    """One number (or a few side by side) for the dashboard's time range: instant queries over $__range."""
    panel = stat.Panel().graph_mode(common_model.BigValueGraphMode.NONE).text_mode(
        common_model.BigValueTextMode.VALUE_AND_NAME).reduce_options(
        common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return _with_targets(panel, title, description, unit, targets)


def ranking(title: str, description: str, unit: str, *targets: Target) -> bargauge.Panel:
    """Horizontal bars, one per series of instant queries over $__range."""
    panel = bargauge.Panel().orientation(common_model.VizOrientation.HORIZONTAL).display_mode(
        common_model.BarGaugeDisplayMode.GRADIENT).min(0).reduce_options(
        common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return _with_targets(panel, title, description, unit, targets)


def per_interval(title: str, description: str, unit: str, *targets: Target) -> timeseries.Panel:
    """Stacked bars of what was added in each $__interval step: they add up to the range's total."""
    panel = timeseries.Panel().draw_style(common_model.GraphDrawStyle.BARS).fill_opacity(80).stacking(
        common.StackingConfig().mode(common_model.StackingMode.NORMAL))
    return _with_targets(_legend_table(panel, "sum"), title, description, unit, targets)


def lines(title: str, description: str, unit: str, *targets: Target) -> timeseries.Panel:
    panel = timeseries.Panel().draw_style(common_model.GraphDrawStyle.LINE).span_nulls(False).show_points(
        common_model.VisibilityMode.AUTO)
    return _with_targets(_legend_table(panel, "mean", "max"), title, description, unit, targets)


def _legend_table(panel: timeseries.Panel, *calcs: str) -> timeseries.Panel:
    return panel.legend(common.VizLegendOptions().display_mode(common_model.LegendDisplayMode.TABLE).placement(
        common_model.LegendPlacement.BOTTOM).show_legend(True).calcs(list(calcs)))


class Layout:
    """Places panels left to right in Grafana's 24-column grid and numbers them."""

    def __init__(self, board: dashboard.Dashboard) -> None:
        self.board, self.x, self.y, self.row_height, self.next_id = board, 0, 0, 0, 1

    def add(self, panel: Any, width: int, height: int) -> Layout:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel.id(self.next_id).grid_pos(model.GridPos(h=height, w=width, x=self.x, y=self.y))
        self.board.with_panel(panel)
        self.x, self.row_height, self.next_id = self.x + width, max(self.row_height, height), self.next_id + 1
        return self


def template_variable(name: str, selector: str, label: str) -> dashboard.QueryVariable:
    """A multi-value variable listing `label`'s values among the series `selector` matches; "All" is `.*`, which
    also matches series without the label."""
    every = model.VariableOption(selected=True, text=["All"], value=["$__all"])
    return (dashboard.QueryVariable(name).label(name.capitalize()).datasource(DATASOURCE)
            .query(f"label_values({selector}, {label})").current(every).multi(True).include_all(True).all_value(".*")
            .sort(model.VariableSort.ALPHABETICAL_ASC).refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED))


def new_dashboard(uid: str, title: str, description: str) -> tuple[dashboard.Dashboard, Layout]:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags([TAG]).time("now-1h", "now")
             .refresh("30s").tooltip(model.DashboardCursorSync.CROSSHAIR).editable()
             .link(dashboard.DashboardLink("lmscope").type(model.DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(True).keep_time(True))
             .with_variable(template_variable("service", f"{{{SCOPE}}}", "service_name"))
             .with_variable(template_variable("model", f"{{{SCOPE}, {SERVICE}}}", "gen_ai_request_model")))
    return board, Layout(board)


# --- the dashboards -----------------------------------------------------------------------------------

MODULE_PATH, MODEL_LABEL, SERVICE_LABEL = "lmscope_module_path", "gen_ai_request_model", "service_name"
PHASE_LABEL = "lmscope_phase"
METRIC_LABEL = "lmscope_evaluation_metric"
INPUT, OUTPUT = 'gen_ai_token_type="input"', 'gen_ai_token_type="output"'
HIT, FAILED = 'lmscope_cache_result="hit"', 'error_type!=""'


def cost_dashboard() -> dashboard.Dashboard:
    board, layout = new_dashboard("lmscope-cost", "lmscope / Cost",
                                  "What LM calls cost, by model, DSPy module path and service; tokens in, out and "
                                  "read from providers' prompt caches.")
    spend, calls = lm(COST), lm(f"{TOKENS}_count", INPUT)
    (layout
     .add(figure("Spend", "USD billed by LM calls in the time range (calls with a known price).", "currencyUSD",
                 target(total(spend), "spend", instant=True)), 5, 4)
     .add(figure("LM calls", "Provider calls that returned usage (DSPy cache hits and failed calls excluded).",
                 "short", target(total(calls), "calls", instant=True)), 4, 4)
     .add(figure("Cost per LM call", "Spend divided by the LM calls that returned usage.", "currencyUSD",
                 target(divided(total(spend), total(calls)), "per call", instant=True)), 5, 4)
     .add(figure("Tokens", "Input and output tokens; cached: input tokens read from the provider's prompt cache "
                 "(a part of the input tokens).", "short",
                 target(total(lm(f"{TOKENS}_sum", INPUT)), "input", instant=True),
                 target(total(lm(f"{TOKENS}_sum", OUTPUT)), "output", instant=True),
                 target(total(lm(CACHED_TOKENS)), "cached", instant=True)), 10, 4)
     .add(per_interval("Spend by model", "USD per interval, by requested model.", "currencyUSD",
                       target(total(spend, STEP, [MODEL_LABEL]), legend(MODEL_LABEL))), 12, 9)
     .add(per_interval("Spend by module path", "USD per interval, by the DSPy module path that made the LM call.",
                       "currencyUSD",
                       target(name_no_module(total(spend, STEP, [MODULE_PATH])), legend(MODULE_PATH))), 12, 9)
     .add(per_interval("Spend by service", "USD per interval, by service.name.", "currencyUSD",
                       target(total(spend, STEP, [SERVICE_LABEL]), legend(SERVICE_LABEL))), 12, 9)
     .add(ranking("Top modules by cost", "The ten DSPy module paths whose LM calls cost most in the time range.",
                  "currencyUSD",
                  target(top(name_no_module(grown(total(spend, by=[MODULE_PATH])))), legend(MODULE_PATH),
                         instant=True)), 12, 9)
     .add(per_interval("Tokens over time", "Tokens per interval: input, output, and input read from prompt caches.",
                       "short",
                       target(total(lm(f"{TOKENS}_sum", INPUT), STEP), "input"),
                       target(total(lm(f"{TOKENS}_sum", OUTPUT), STEP), "output"),
                       target(total(lm(CACHED_TOKENS), STEP), "cached")), 12, 9)
     .add(ranking("Cost per LM call by model", "Spend divided by the LM calls that returned usage, per model.",
                  "currencyUSD",
                  target(divided(total(spend, by=[MODEL_LABEL]), total(calls, by=[MODEL_LABEL])),
                         legend(MODEL_LABEL), instant=True)), 12, 9)
     # What optimizing and evaluating cost next to serving. Per compile is not on a dashboard: metrics carry the
     # phase, not a compile id (one series per compile would never stop growing); `lmscope report` has it.
     .add(per_interval("Spend by phase", "USD per interval, by lmscope.phase: optimize (inside a DSPy compile), "
                       "evaluate (inside dspy.Evaluate, outside a compile), serve (everything else).", "currencyUSD",
                       target(total(spend, STEP, [PHASE_LABEL]), legend(PHASE_LABEL))), 12, 9)
     .add(per_interval("Tokens by phase", "Input and output tokens per interval, by lmscope.phase.", "short",
                       target(total(lm(f"{TOKENS}_sum", INPUT), STEP, [PHASE_LABEL]), f"input {legend(PHASE_LABEL)}"),
                       target(total(lm(f"{TOKENS}_sum", OUTPUT), STEP, [PHASE_LABEL]),
                              f"output {legend(PHASE_LABEL)}")), 12, 9)
     # What the spend bought: dspy.Evaluate's scores, per metric (a gauge: each run sets its metric's latest score;
     # no model label, so only the service variable applies).
     .add(lines("Evaluation scores", "The score (percent) of the latest dspy.Evaluate run of each metric, over time, "
                "by metric name and lmscope.phase (evaluate; optimize for the evaluations a compile runs).", "percent",
                target(f"max by ({METRIC_LABEL}, {PHASE_LABEL}) ({module(EVALUATION_SCORE)})",
                       f"{legend(METRIC_LABEL)} ({legend(PHASE_LABEL)})")), 12, 9)
     .add(ranking("Latest evaluation scores", "The latest score (percent) of each dspy.Evaluate metric in the time "
                  "range.", "percent",
                  target(f"max by ({METRIC_LABEL}) (last_over_time({module(EVALUATION_SCORE)}[$__range]))",
                         legend(METRIC_LABEL), instant=True)), 12, 9))
    return board


def cache_dashboard() -> dashboard.Dashboard:
    board, layout = new_dashboard("lmscope-cache", "lmscope / Cache",
                                  "DSPy's cache: how many LM calls it served, from which layer, and what they would "
                                  "have cost.")
    requests, hits = lm(CACHE_REQUESTS), lm(CACHE_REQUESTS, HIT)
    layer = "lmscope_cache_layer"
    (layout
     .add(figure("Hit ratio", "LM calls DSPy's cache answered, of all that consulted it.", "percentunit",
                 target(ratio(hits, requests, RANGE), "hit ratio", instant=True)), 6, 4)
     .add(figure("Calls saved", "LM calls DSPy's cache answered: no provider call was made.", "short",
                 target(total(hits), "cache hits", instant=True)), 6, 4)
     .add(figure("Dollars saved", "What the cached answers cost when they were first bought.", "currencyUSD",
                 target(total(lm(SAVED_USD)), "saved", instant=True)), 6, 4)
     .add(figure("Tokens saved", "Input and output tokens the cached answers did not spend again.", "short",
                 target(total(lm(SAVED_TOKENS)), "saved", instant=True)), 6, 4)
     .add(ranking("Hit ratio by layer", "Hits served by each layer of DSPy's cache (memory, disk), of all LM "
                  "calls that consulted it.", "percentunit",
                  target(divided(total(hits, by=[layer]), total(requests), " on() group_left()"), legend(layer),
                         instant=True)), 12, 8)
     .add(lines("Hit ratio by layer over time", "Share of cache lookups each layer answered.", "percentunit",
                target(divided(total(hits, SMOOTH, [layer]), total(requests, SMOOTH), " on() group_left()"),
                       legend(layer))), 12, 8)
     .add(per_interval("Cache lookups", "LM calls that consulted DSPy's cache per interval: misses, and hits by "
                       "layer.", "short",
                       target(total(requests, STEP, ["lmscope_cache_result", layer]),
                              f"{legend('lmscope_cache_result')} {legend(layer)}")), 12, 9)
     .add(per_interval("Dollars saved by model", "USD the cache saved per interval, by requested model.",
                       "currencyUSD", target(total(lm(SAVED_USD), STEP, [MODEL_LABEL]), legend(MODEL_LABEL))),
          12, 9)
     .add(ranking("Dollars saved by module path", "The ten DSPy module paths whose cached LM calls saved most.",
                  "currencyUSD",
                  target(top(name_no_module(grown(total(lm(SAVED_USD), by=[MODULE_PATH])))), legend(MODULE_PATH),
                         instant=True)), 24, 8))
    return board


def latency_dashboard() -> dashboard.Dashboard:
    board, layout = new_dashboard("lmscope-latency", "lmscope / Latency and errors",
                                  "LM call latency by model, DSPy module duration by path, and what failed.")
    lm_calls, lm_failed = lm(f"{LM_DURATION}_count"), lm(f"{LM_DURATION}_count", FAILED)
    lm_buckets = lm(f"{LM_DURATION}_bucket")
    module_calls, module_failed = module(f"{MODULE_DURATION}_count"), module(f"{MODULE_DURATION}_count", FAILED)
    module_buckets = module(f"{MODULE_DURATION}_bucket")
    (layout
     .add(figure("LM calls", "Provider calls, failed ones included (DSPy cache hits make none).", "short",
                 target(total(lm_calls), "calls", instant=True)), 6, 4)
     .add(figure("Failed LM calls", "Provider calls that raised.", "short",
                 target(f"{total(lm_failed)} or vector(0)", "failed", instant=True)), 6, 4)
     .add(figure("LM call latency", "Median and 95th percentile over the time range.", "s",
                 target(quantile(0.5, lm_buckets, RANGE), "p50", instant=True),
                 target(quantile(0.95, lm_buckets, RANGE), "p95", instant=True)), 6, 4)
     .add(figure("Failed module calls", "DSPy module calls that raised (not filtered by model).", "short",
                 target(f"{total(module_failed)} or vector(0)", "failed", instant=True)), 6, 4)
     .add(lines("LM call latency by model", "p50 and p95 of provider call duration.", "s",
                target(quantile(0.5, lm_buckets, SMOOTH, [MODEL_LABEL]), f"p50 {legend(MODEL_LABEL)}"),
                target(quantile(0.95, lm_buckets, SMOOTH, [MODEL_LABEL]), f"p95 {legend(MODEL_LABEL)}")), 12, 9)
     .add(lines("Module duration p95 by path", "95th percentile of DSPy module call duration, by module path (not "
                "filtered by model).", "s",
                target(quantile(0.95, module_buckets, SMOOTH, [MODULE_PATH]), legend(MODULE_PATH))), 12, 9)
     .add(lines("LM call error rate by model", "Failed provider calls, of all provider calls.", "percentunit",
                target(ratio(lm_failed, lm_calls, SMOOTH, [MODEL_LABEL]), legend(MODEL_LABEL))), 12, 8)
     .add(lines("Module error rate by path", "DSPy module calls that raised, of all calls of that module path.",
                "percentunit",
                target(ratio(module_failed, module_calls, SMOOTH, [MODULE_PATH]), legend(MODULE_PATH))), 12, 8)
     .add(ranking("Errors by type", "Failed LM calls and module calls in the time range, by exception class.",
                  "short",
                  target(grown(total(lm_failed, by=["error_type"])), f"LM call: {legend('error_type')}", instant=True),
                  target(grown(total(module_failed, by=[MODULE_PATH, "error_type"])),
                         f"{legend(MODULE_PATH)}: {legend('error_type')}", instant=True)), 24, 8))
    return board


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "cost.json": cost_dashboard, "cache.json": cache_dashboard, "latency.json": latency_dashboard}


def render() -> dict[str, str]:
    """{file name: the JSON text this script writes}."""
    return {name: json.dumps(make().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
            for name, make in DASHBOARDS.items()}


def main(argv: Sequence[str]) -> int:
    stale = [name for name, text in render().items()
             if not (FOLDER / name).is_file() or (FOLDER / name).read_text() != text]
    if "--check" in argv:
        print("out of date: " + ", ".join(stale) if stale else "up to date")
        return 1 if stale else 0
    for name, text in render().items():
        (FOLDER / name).write_text(text)
    print(f"wrote {', '.join(DASHBOARDS)} in {FOLDER}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
