"""`exporters=["mlflow"]` against a real `mlflow server` (sqlite store, 127.0.0.1, one worker), read back with
MLflow's own client: the trace tree, span types, token usage and session/user as MLflow shows them.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_env import app_env
from otlp_servers import free_port  # loaded by tests/conftest.py
from server_process import running_server  # tests/server_process.py (tests/ is on sys.path, as for otlp_servers)

from lmscope.telemetry._exporters.mlflow import mlflow_auth_headers, mlflow_span_exporter
from lmscope.telemetry._exporters.mlflow_experiment import resolve_experiment_id
from lmscope.telemetry._options import ConfigError, resolve_options
from lmscope.telemetry._trace_file import SpanRecord, read_trace_file

SERVER_START_TIMEOUT_S = 180  # it took 5-12 s on an idle 2-core machine; CI machines are busier


def _clean_env(**extra: str) -> dict[str, str]:
    env = app_env("LMSCOPE_", "OTEL_", "MLFLOW_")
    # The server prices spans with LiteLLM when it is installed: keep its price table local (no network here).
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    return env


def _warm_up(url: str) -> None:
    """One priced LM span, so the server's lazy imports (cost catalog) happen before the timed exports."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=url + "/v1/traces", headers={"x-mlflow-experiment-id": "0"}, timeout=120)))
    span = provider.get_tracer("warm-up").start_span("chat gpt-4o-mini")
    span.set_attributes({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1,
                         "gen_ai.usage.output_tokens": 1})
    span.end()
    provider.shutdown()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with a fresh sqlite store; yields its URL, stops it afterwards."""
    folder = tmp_path_factory.mktemp("mlflow")
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--default-artifact-root", str(folder / "artifacts"), "--workers", "1"]
    # The server starts uvicorn, a job runner and queue consumers: running_server stops them all with it.
    with running_server("mlflow server", command, _clean_env(), url + "/health", folder / "server.log",
                        SERVER_START_TIMEOUT_S):
        _warm_up(url)
        yield url


def _mlflow_traces(url: str, experiment_id: str) -> list:
    from mlflow import MlflowClient

    return list(MlflowClient(tracking_uri=url).search_traces(locations=[experiment_id], max_results=100))


def _expected_span_type(record: SpanRecord) -> str:
    if record.attributes.get("gen_ai.operation.name") == "chat":
        return "CHAT_MODEL"
    return record.attributes["openinference.span.kind"]  # CHAIN, RETRIEVER as OpenInference names them


def _usage_of_lm_calls(records: list[SpanRecord]) -> dict[str, int]:
    calls = [r.attributes for r in records if r.name.startswith("chat ")]
    usage = {"input_tokens": sum(c["gen_ai.usage.input_tokens"] for c in calls),
             "output_tokens": sum(c["gen_ai.usage.output_tokens"] for c in calls),
             "cache_read_input_tokens": sum(c["gen_ai.usage.cache_read.input_tokens"] for c in calls)}
    return {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]}


def test_demo_traces_in_mlflow_match_the_trace_file(mlflow_server: str, lm_server, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    assert client.get_experiment_by_name("lmscope demo") is None  # the exporter creates it
    trace_file = tmp_path / "demo.jsonl"
    env = _clean_env(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_EXPERIMENT_NAME="lmscope demo",
                     OTEL_EXPORTER_OTLP_TIMEOUT="120")
    demo = ("import sys; from lmscope._demo import run; "
            "sys.exit(run(file_path=sys.argv[1], exporters=['mlflow', 'file'], lm_base_url=sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", demo, str(trace_file), lm_server.base_url], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Failed to export" not in done.stderr and "lmscope:" not in done.stderr, done.stderr

    experiment = client.get_experiment_by_name("lmscope demo")
    records = read_trace_file(trace_file)
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in records:
        by_trace[record.trace_id].append(record)
    traces = {trace.info.trace_id: trace for trace in _mlflow_traces(mlflow_server, experiment.experiment_id)}
    assert sorted(traces) == sorted(f"tr-{trace_id}" for trace_id in by_trace)
    assert len(traces) == 4  # fresh run, cached run, dspy.context run, one trace for the threaded batch

    for trace_id, file_spans in by_trace.items():
        trace = traces[f"tr-{trace_id}"]
        spans = trace.data.spans
        # The module hierarchy, span for span.
        assert sorted((s.span_id, s.parent_id, s.name) for s in spans) == sorted(
            (r.span_id, r.parent_span_id, r.name) for r in file_spans)
        kinds = {r.span_id: _expected_span_type(r) for r in file_spans}
        assert {s.span_id: s.span_type for s in spans} == kinds
        assert set(kinds.values()) == {"CHAIN", "RETRIEVER", "CHAT_MODEL"}
        # Token usage: the sum of the LM calls, nothing added for the module spans that roll them up.
        assert trace.info.token_usage == _usage_of_lm_calls(file_spans)
        assert [s.name for s in spans if s.attributes.get("mlflow.chat.tokenUsage")] == [
            s.name for s in spans if s.name.startswith("chat ")]
        metadata = trace.info.trace_metadata
        assert (metadata["mlflow.trace.session"], metadata["mlflow.trace.user"]) == ("demo-session", "demo-user")

    cached = [trace for trace in traces.values() if trace.info.token_usage["total_tokens"] == 0]
    assert len(cached) == 1  # the second, DSPy-cached run bills nothing


def test_experiment_id_is_used_as_given(mlflow_server: str, monkeypatch: pytest.MonkeyPatch, traced_run) -> None:
    from mlflow import MlflowClient

    experiment_id = MlflowClient(tracking_uri=mlflow_server).create_experiment("by id")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "ignored: an id wins")
    recorded = traced_run(resolve_options(exporters="mlflow", mlflow_tracking_uri=mlflow_server))
    traces = _mlflow_traces(mlflow_server, experiment_id)
    assert sorted(t.info.trace_id for t in traces) == sorted({f"tr-{r.trace_id}" for r in recorded})
    assert MlflowClient(tracking_uri=mlflow_server).get_experiment_by_name("ignored: an id wins") is None


def test_experiment_name_resolves_to_the_existing_one(mlflow_server: str) -> None:
    from mlflow import MlflowClient

    created = MlflowClient(tracking_uri=mlflow_server).create_experiment("exists already")
    assert resolve_experiment_id(mlflow_server, {}, "exists already") == created
    fresh = resolve_experiment_id(mlflow_server, {}, "made by lmscope")
    assert MlflowClient(tracking_uri=mlflow_server).get_experiment(fresh).name == "made by lmscope"


def test_server_down_fails_exports_not_instrument_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """Through the export guard, as `instrument()` builds it: one warning for the outage, naming why."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    from lmscope.telemetry._export_guard import GuardedExporter

    down = f"http://127.0.0.1:{free_port()}"
    exporter = GuardedExporter(mlflow_span_exporter(resolve_options(exporters="mlflow", mlflow_tracking_uri=down,
                                                                    mlflow_experiment_name="anything")), "mlflow")
    span = TracerProvider().get_tracer("t").start_span("work")
    span.end()
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        results = [exporter.export([span]) for _ in range(3)]
    assert results == [SpanExportResult.FAILURE] * 3
    [message] = [r.getMessage() for r in caplog.records if r.name == "lmscope"]
    # The experiment lookup's own line ("cannot get the experiment id ... connection refused") gave the reason.
    assert message.startswith(f"lmscope: exporter mlflow cannot deliver spans to {down}/v1/traces "
                              "(connection refused); "), message
    exporter.shutdown()


@pytest.mark.parametrize(("env", "header"), [
    ({}, {}),
    ({"MLFLOW_TRACKING_TOKEN": "tok-SECRET"}, {"Authorization": "Bearer tok-SECRET"}),
    ({"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw"}, {"Authorization": "Basic YW5uOnB3"}),
])
def test_auth_headers_follow_mlflows_variables(monkeypatch: pytest.MonkeyPatch, env: dict, header: dict) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert mlflow_auth_headers(resolve_options(exporters="mlflow")) == header


def test_half_a_login_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "mlflow")
    with pytest.raises(ConfigError) as caught:
        mlflow_span_exporter(resolve_options())
    assert str(caught.value) == (
        "lmscope: exporters: 'mlflow' has MLFLOW_TRACKING_USERNAME but MLFLOW_TRACKING_PASSWORD is not set "
        "(from LMSCOPE_EXPORTERS); allowed: both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
        "or MLFLOW_TRACKING_TOKEN, or none for a server without auth")
