"""The dashboards' counter arithmetic against a real Prometheus, on series whose every value the test chooses.

A tiny HTTP server stands in for an app's /metrics: each scrape it answers is one step of SCRIPT (so many calls
made since the last scrape; or a 503, the app counting on or down; or a restart, the counters back to what the
new process counted). The series of the lmscope metrics the dashboards read all follow one count. Debian's
`prometheus` scrapes it every second; the panels' queries then run as Grafana would run them (see
test_dashboards_prometheus.py): per 1 s step for time series, over a few idle seconds for everything.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SERVICE, MODEL, MODULE_PATH = "edge-cases", "gpt-4o-mini", "qa.predict"
LM = f'otel_scope_name="lmscope",service_name="{SERVICE}",gen_ai_request_model="{MODEL}"'
MODULE = f'otel_scope_name="lmscope",service_name="{SERVICE}",lmscope_module_path="{MODULE_PATH}"'
SPEND = f"gen_ai_usage_cost_USD_total{{{LM},lmscope_module_path=\"{MODULE_PATH}\"}}"

UP, FAIL, RESTART = "up", "503", "restart"
IDLE_SCRAPES = 6  # > the 4 s $__rate_interval window plus a step: every window of the idle check saw no call
SCRIPT = [
    (UP, 1000),  # the series' first scrape, with 1000 calls before it: the first bar is all of them
    (UP, 1), (UP, 1),
    (FAIL, 1),  # one failed scrape while the app counts on: stale markers, then the series continues
    (UP, 1), (UP, 1),
    (RESTART, 1),  # the app restarted between two scrapes: its counters start again from the call since
    (UP, 1), (UP, 1),
    (FAIL, 0), (FAIL, 0),  # the app is down for two scrapes, then restarts
    (RESTART, 1),
    (UP, 1), (UP, 1),
    *[(UP, 0)] * IDLE_SCRAPES,
]


def exposition(calls: int) -> str:
    """Every lmscope series the dashboards read, as an app that made `calls` LM calls would expose them."""
    lines = [
        f"{SPEND} {calls * 0.5}",
        f'gen_ai_client_token_usage_sum{{{LM},gen_ai_token_type="input"}} {calls * 10}',
        f'gen_ai_client_token_usage_sum{{{LM},gen_ai_token_type="output"}} {calls * 5}',
        f'gen_ai_client_token_usage_count{{{LM},gen_ai_token_type="input"}} {calls}',
        f'gen_ai_client_token_usage_count{{{LM},gen_ai_token_type="output"}} {calls}',
        f"lmscope_usage_cached_tokens_total{{{LM}}} {calls * 2}",
        f'lmscope_cache_requests_total{{{LM},lmscope_cache_result="hit",lmscope_cache_layer="memory"}} {calls}',
        f'lmscope_cache_requests_total{{{LM},lmscope_cache_result="miss",lmscope_cache_layer=""}} {calls}',
        f'lmscope_cache_saved_USD_total{{{LM},lmscope_module_path="{MODULE_PATH}"}} {calls * 0.25}',
        f"lmscope_cache_saved_tokens_total{{{LM}}} {calls * 15}",
    ]
    for metric, labels in (("gen_ai_client_operation_duration_seconds", LM),
                           ("lmscope_module_duration_seconds", MODULE)):
        for extra in ("", ',error_type="TimeoutError"'):
            lines += [f'{metric}_bucket{{{labels}{extra},le="{le}"}} {calls}' for le in ("0.5", "+Inf")]
            lines += [f"{metric}_sum{{{labels}{extra}}} {calls * 0.25}", f"{metric}_count{{{labels}{extra}}} {calls}"]
    return "\n".join(lines) + "\n"


@dataclass
class ScriptedApp:
    """Answers scrape n with SCRIPT[n] (idle once the script is done); logs (answered 200, calls since the
    previous scrape) per scrape."""

    calls: int = 0
    log: list[tuple[bool, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scrape(self) -> tuple[int, str]:
        with self.lock:
            kind, made = SCRIPT[len(self.log)] if len(self.log) < len(SCRIPT) else (UP, 0)
            self.calls = made if kind == RESTART else self.calls + made
            self.log.append((kind != FAIL, made))
            return (503, "unavailable\n") if kind == FAIL else (200, exposition(self.calls))


def serve(app: ScriptedApp) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = app.scrape() if self.path == "/metrics" else (404, "")
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Scraped:
    prometheus: Any  # conftest.PrometheusServer
    log: list[tuple[bool, int]]
    """Per scrape of SCRIPT: (answered 200, calls made since the previous scrape)."""
    samples: list[tuple[float, float]]
    """The spend series' stored samples: (time, value), one per scrape of SCRIPT answered 200."""


@pytest.fixture(scope="module")
def scraped(start_prometheus) -> Scraped:
    app = ScriptedApp()
    server = serve(app)
    answered = sum(kind != FAIL for kind, _ in SCRIPT)
    samples: list[tuple[float, float]] = []
    try:
        prometheus = start_prometheus(f"127.0.0.1:{server.server_address[1]}")

        def stored() -> bool:
            data = prometheus.api("/api/v1/query", query=f"{SPEND}[5m]", time=f"{time.time():.3f}")
            samples[:] = [(float(t), float(v)) for series in data["result"] for t, v in series["values"]]
            return len(samples) >= answered

        prometheus._wait(stored, f"{answered} samples of the spend series", timeout=len(SCRIPT) + 30)
        with app.lock:
            log = app.log[:len(SCRIPT)]
    finally:
        server.shutdown()
        server.server_close()
    return Scraped(prometheus, log, samples[:answered])


def _expr(grafana, query: dict, **macros: str) -> str:
    return grafana.interpolate(query["expr"], {"service": ".*", "model": ".*", **macros})


def _panel_query(dashboards, board: str, title: str) -> dict:
    [panel] = [p for p in dashboards[board]["panels"] if p["title"] == title]
    [query] = panel["targets"]
    return query


def _true_bar(scraped: Scraped, at: float, step: float) -> float | None:
    """USD spent between the last sample before the step (t - step, t] and the last sample in it, as the app
    counted it (not as Prometheus saw it); None when the step holds no sample."""
    answered = [i for i, (ok, _) in enumerate(scraped.log) if ok]  # the scrape of each sample
    inside = [j for j, (t, _) in enumerate(scraped.samples) if at - step < t <= at]
    if not inside:
        return None
    before = [j for j, (t, _) in enumerate(scraped.samples) if t <= at - step]
    since = answered[before[-1]] + 1 if before else 0
    return 0.5 * sum(made for _, made in scraped.log[since:answered[inside[-1]] + 1])


def test_the_scripted_app_was_scraped_as_scripted(scraped):
    assert [made for _, made in scraped.log] == [made for _, made in SCRIPT]
    calls, served = 0, []
    for kind, made in SCRIPT:
        calls = made if kind == RESTART else calls + made
        if kind != FAIL:
            served.append(0.5 * calls)
    assert [value for _, value in scraped.samples] == served
    gaps = [b - a for (a, _), (b, _) in zip(scraped.samples, scraped.samples[1:])]
    assert sorted(round(gap) for gap in gaps) == [1] * (len(gaps) - 2) + [2, 3]  # the failed scrapes


@pytest.mark.parametrize("title", ["Spend by service", "Spend by model", "Spend by module path"])
def test_bars_of_1s_steps_count_every_call_once_across_failed_scrapes_and_restarts(scraped, grafana, dashboards,
                                                                                    title):
    """A failed scrape leaves stale markers, after which an `offset` selector finds no value at the step's start
    (the whole counter was counted again); a restart between two scrapes puts a smaller value after a larger one
    in two windows of one sample each, where resets() sees nothing (a negative bar). Steps fall half-way between
    scrapes, so each holds one sample or none, as with Prometheus 3's left-open ranges."""
    step = 1.0
    first, last = scraped.samples[0][0], scraped.samples[-1][0]
    start = round(first - step / 2, 3)
    steps = [round(start + k * step, 3) for k in range(round((last - start) / step) + 1)]
    expected = {at: bar for at in steps if (bar := _true_bar(scraped, at, step)) is not None}
    assert expected[steps[1]] == max(expected.values()) == 500 and 0 in expected.values()
    expr = _expr(grafana, _panel_query(dashboards, "cost.json", title), __interval="1s", __rate_interval="4s")
    [series] = scraped.prometheus.query_range(expr, start, steps[-1], step)
    bars = {round(float(t), 3): float(v) for t, v in series["values"]}
    assert bars == expected, f"Prometheus {scraped.prometheus.version}"
    assert sum(bars.values()) == 0.5 * sum(made for _, made in SCRIPT)


# Panels that show a ratio or percentile of what happened, or list what grew: nothing for an idle time range. And
# the evaluation scores: the scripted app runs no dspy.Evaluate, so their gauge has no series at all.
NOTHING_WHEN_IDLE = {
    "cost.json": {"Cost per LM call", "Top modules by cost", "Cost per LM call by model", "Evaluation scores",
                  "Latest evaluation scores"},
    "cache.json": {"Hit ratio", "Hit ratio by layer", "Hit ratio by layer over time", "Dollars saved by module path"},
    "latency.json": {"LM call latency", "LM call latency by model", "Module duration p95 by path",
                     "LM call error rate by model", "Module error rate by path", "Errors by type"},
}


def test_an_idle_time_range_shows_no_ratios_and_no_nan(scraped, grafana, dashboards):
    """The series exist but no call was made in the range: ratios have nothing to divide (not NaN, 0/0),
    rankings list no 0-value bars, and counts and bars are 0."""
    end = scraped.samples[-1][0] + 0.5  # the last IDLE_SCRAPES samples hold the same values
    assert len({value for _, value in scraped.samples[-IDLE_SCRAPES:]}) == 1
    empty, shown = [], {}
    for name, board in dashboards.items():
        titles = {panel["title"] for panel in board["panels"]}
        assert NOTHING_WHEN_IDLE[name] <= titles, name
        for panel, query in grafana.queries(board):
            if query["instant"]:
                result = scraped.prometheus.query(_expr(grafana, query, __range="2s"), end)
                values = [float(sample["value"][1]) for sample in result]
            else:
                expr = _expr(grafana, query, __interval="1s", __rate_interval="4s")
                result = scraped.prometheus.query_range(expr, end - 1, end, 1)
                values = [float(v) for sample in result for _, v in sample["values"]]
            key = f"{name}: {panel['title']} [{query['refId']}]"
            (empty.append(key) if not values else shown.setdefault(key, values))
    assert sorted(empty) == sorted(f"{name}: {panel['title']} [{query['refId']}]"
                                   for name, board in dashboards.items() for panel, query in grafana.queries(board)
                                   if panel["title"] in NOTHING_WHEN_IDLE[name])
    assert {key: values for key, values in shown.items() if any(value != 0 for value in values)} == {}
