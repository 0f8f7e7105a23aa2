"""Metrics as a user gets them from `lmscope.instrument()`: the demo workload on both DSPy engines (fresh
calls, cache hits, an LM error) against the stand-in LM server, in a fresh process each time (a process has
one global MeterProvider). The metrics must agree with `lmscope report` over the same run's trace file and
with `lmscope.track()`, and the Prometheus endpoint must serve the names the dashboards query.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from app_env import app_env
from prometheus_client.parser import text_string_to_metric_families

from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_file import read_trace_file

_APP = """
import json, sys, urllib.request
import dspy, lmscope
from lmscope._demo import build_program, run_workload

base_url, trace_file, mode = sys.argv[1:4]
if mode == "app-provider":  # the app set up OTel metrics itself; lmscope adds no exporter
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    handle = lmscope.instrument(service_name="agree", exporters=["file"], file_path=trace_file)
else:
    handle = lmscope.instrument(service_name="agree", exporters=["file"], file_path=trace_file,
                                metrics_exporters=["prometheus"], prometheus_endpoint="127.0.0.1:0")
native = dspy.LM("openai/gpt-4o-mini", api_base=base_url, api_key="sk-x")
fresh_litellm = dspy.LM("openai/gpt-4o-mini", api_base=base_url, api_key="sk-x", engine="litellm", cache=False)
broken = dspy.LM("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="sk-x", num_retries=0)
with lmscope.track() as usage:
    for lm in (native, fresh_litellm):
        dspy.configure(lm=lm)
        run_workload(build_program(), lm)
    dspy.configure(lm=broken)
    try:
        dspy.Predict("question -> answer")(question="Is anyone there?")
    except Exception as exc:
        error_type = type(exc).__name__
handle.force_flush()
result = {"track": usage.total(), "error_type": error_type}
if mode == "app-provider":
    result["points"] = [[metric.name, dict(point.attributes), getattr(point, "sum", None),
                         getattr(point, "value", None), getattr(point, "count", None)]
                        for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                        for metric in sm.metrics for point in metric.data.data_points]
    result["scopes"] = sorted({sm.scope.name for rm in reader.get_metrics_data().resource_metrics
                               for sm in rm.scope_metrics})
else:
    host, port = handle.prometheus_address
    result["address"] = f"http://{host}:{port}/metrics"
    result["scrape"] = urllib.request.urlopen(result["address"]).read().decode()
lmscope.uninstrument()
if mode != "app-provider":
    try:  # still in this process, so only lmscope itself can have closed the port
        urllib.request.urlopen(result["address"], timeout=5)
        result["after_uninstrument"] = "still serving"
    except OSError as exc:
        result["after_uninstrument"] = type(exc).__name__
print(json.dumps(result))
"""

SCOPE_AND_SERVICE = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url", "service_name",
                     "lmscope_phase"}  # on every lmscope series (issue 14)
LM_LABELS = {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "lmscope_module_path",
             *SCOPE_AND_SERVICE}
CACHE_LABELS = {*LM_LABELS, "lmscope_cache_result", "lmscope_cache_layer"}
EXPECTED_SERIES = {
    "gen_ai_client_operation_duration_seconds_bucket": {*LM_LABELS, "error_type", "le"},
    "gen_ai_client_operation_duration_seconds_count": {*LM_LABELS, "error_type"},
    "gen_ai_client_operation_duration_seconds_sum": {*LM_LABELS, "error_type"},
    "gen_ai_client_token_usage_bucket": {*LM_LABELS, "gen_ai_token_type", "le"},
    "gen_ai_client_token_usage_count": {*LM_LABELS, "gen_ai_token_type"},
    "gen_ai_client_token_usage_sum": {*LM_LABELS, "gen_ai_token_type"},
    "gen_ai_usage_cost_USD_total": LM_LABELS,
    "lmscope_usage_cached_tokens_total": LM_LABELS,
    "lmscope_cache_requests_total": CACHE_LABELS,
    "lmscope_cache_saved_USD_total": CACHE_LABELS,
    "lmscope_cache_saved_tokens_total": CACHE_LABELS,
    "lmscope_module_duration_seconds_bucket": {"lmscope_module_path", "error_type", "le", *SCOPE_AND_SERVICE},
    "lmscope_module_duration_seconds_count": {"lmscope_module_path", "error_type", *SCOPE_AND_SERVICE},
    "lmscope_module_duration_seconds_sum": {"lmscope_module_path", "error_type", *SCOPE_AND_SERVICE},
}


def run_app(tmp_path, lm_server, mode):
    trace_file = tmp_path / "traces.jsonl"
    env = {**os.environ, "DSPY_CACHEDIR": str(tmp_path / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env = app_env("LMSCOPE_", "OTEL_", base=env)
    done = subprocess.run([sys.executable, "-c", _APP, lm_server.base_url, str(trace_file), mode], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), summarize(read_trace_file(trace_file)).total


def assert_totals_agree(totals, report, track):
    """Metrics, `lmscope report` over the trace file and `lmscope.track()` tell the same story."""
    assert report.calls == track["calls"] == 2 * 12  # two demo workloads of 12 LM calls; the failed call got no answer
    assert report.cache_hits == totals["hits"] == track["cache_hits"] == 2
    # The metrics count the failed request too (with its error_type): the provider was asked.
    assert totals["provider_calls"] + totals["hits"] == report.calls + 1
    for name in ("input_tokens", "output_tokens", "cached_tokens"):
        assert totals[name] == getattr(report, name) == track[name], name
    assert report.input_tokens > 0 and report.cached_tokens > 0  # the stand-in server's prefix cache
    for name in ("cost_usd", "saved_usd"):
        assert totals[name] == pytest.approx(getattr(report, name), abs=1e-12) == track[name], name
    assert report.cost_usd > 0 and report.saved_usd > 0


@pytest.mark.slow  # an app process running the demo workload twice, once through LiteLLM: about 10 s
def test_prometheus_endpoint_serves_the_dashboard_names_and_agrees_with_report(tmp_path, lm_server):
    result, report = run_app(tmp_path, lm_server, "prometheus")
    samples = [sample for family in text_string_to_metric_families(result["scrape"]) for sample in family.samples
               if sample.labels.get("otel_scope_name") == "lmscope"]
    labels: dict[str, set[str]] = {}
    for sample in samples:
        labels.setdefault(sample.name, set()).update(sample.labels)
    assert labels == EXPECTED_SERIES
    assert {s.labels["service_name"] for s in samples} == {"agree"}
    assert {s.labels["error_type"] for s in samples if s.labels.get("error_type")} == {result["error_type"]}

    def total(name, **match):
        return sum(s.value for s in samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in match.items()))

    totals = {"hits": total("lmscope_cache_requests_total", lmscope_cache_result="hit"),
              "provider_calls": total("gen_ai_client_operation_duration_seconds_count"),
              "input_tokens": total("gen_ai_client_token_usage_sum", gen_ai_token_type="input"),
              "output_tokens": total("gen_ai_client_token_usage_sum", gen_ai_token_type="output"),
              "cached_tokens": total("lmscope_usage_cached_tokens_total"),
              "cost_usd": total("gen_ai_usage_cost_USD_total"),
              "saved_usd": total("lmscope_cache_saved_USD_total")}
    assert_totals_agree(totals, report, result["track"])
    # Spend by module path, as a dashboard groups it, matches the report's module table.
    by_module = {}
    for sample in samples:
        if sample.name == "gen_ai_usage_cost_USD_total":
            path = sample.labels["lmscope_module_path"]
            by_module[path] = by_module.get(path, 0.0) + sample.value
    assert by_module == pytest.approx({path: spend.cost_usd for path, spend in summarize(
        read_trace_file(tmp_path / "traces.jsonl")).by_module.items() if spend.cost_usd}, abs=1e-12)
    assert result["after_uninstrument"] == "URLError"  # uninstrument() stopped the endpoint (connection refused)


@pytest.mark.slow  # the same app process, metrics through the app's MeterProvider: about 10 s
def test_metrics_through_the_apps_meter_provider_agree_with_report(tmp_path, lm_server):
    result, report = run_app(tmp_path, lm_server, "app-provider")
    assert result["scopes"] == ["lmscope"]

    def total(name, field, **match):
        return sum(point[field] for point in result["points"]
                   if point[0] == name and all(point[1].get(k) == v for k, v in match.items()))

    totals = {"hits": total("lmscope.cache.requests", 3, **{"lmscope.cache.result": "hit"}),
              "provider_calls": total("gen_ai.client.operation.duration", 4),
              "input_tokens": total("gen_ai.client.token.usage", 2, **{"gen_ai.token.type": "input"}),
              "output_tokens": total("gen_ai.client.token.usage", 2, **{"gen_ai.token.type": "output"}),
              "cached_tokens": total("lmscope.usage.cached_tokens", 3),
              "cost_usd": total("gen_ai.usage.cost", 3),
              "saved_usd": total("lmscope.cache.saved", 3)}
    assert_totals_agree(totals, report, result["track"])


def test_metrics_off_by_default_add_no_hook_and_no_import(tmp_path):
    """The default (no metrics exporter, no app MeterProvider) records nothing and costs nothing."""
    code = ("import sys, dspy, lmscope\nhandle = lmscope.instrument(exporters=['none'])\n"
            "runtime = handle._dspy.runtime\n"
            "print(handle._metrics, runtime.lm_call_listeners, runtime.module_listeners, "
            "'opentelemetry.sdk.metrics' in sys.modules)")
    env = app_env("LMSCOPE_", "OTEL_")
    # Logfire (a dev dependency) registers a pydantic plugin that imports the metrics SDK as soon as DSPy builds its
    # first pydantic model; this test is about lmscope's own imports.
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "[]", "[]", "False"]


def test_a_bad_span_exporter_leaves_no_scrape_endpoint_behind(monkeypatch):
    import socket

    from otlp_servers import free_port

    import lmscope

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    port = free_port()
    with pytest.raises(lmscope.ConfigError, match=r"^lmscope: otlp_protocol: 'grpc' needs the gRPC exporter"):
        lmscope.instrument(exporters="otlp", otlp_protocol="grpc", metrics_exporters="prometheus",
                           prometheus_endpoint=f"127.0.0.1:{port}")
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the endpoint was started, then shut down again
    assert lmscope.force_flush() is True  # and nothing stayed instrumented
