"""`lmscope.instrument()` with the backend presets, in fresh interpreters (the global provider is set once).

Langfuse, MLflow and Phoenix stand-ins are local OTLP receivers (no Langfuse server can run here; the real MLflow
and Phoenix servers are exercised in test_mlflow.py and test_phoenix.py): what matters here is where each credential
goes and where it never goes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from app_env import app_env
from otlp_servers import OtlpReceiver, refused_url  # loaded by tests/conftest.py

LANGFUSE_SECRET = "sk-lf-SECRET-langfuse-0001"
MLFLOW_TOKEN = "mlflow-SECRET-token-0002"
COLLECTOR_KEY = "collector-SECRET-key-0003"
LM_KEY = "sk-SECRET-lm-key-0004"
PHOENIX_KEY = "px-SECRET-api-key-0008"

_APP = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # every library's log line, secrets or not
    logging.getLogger("app").debug("DEBUG logging is on")  # the exporters' own lines are held back while they export
    import dspy
    import lmscope

    handle = lmscope.instrument(exporters=sys.argv[3].split(","), file_path=sys.argv[2])
    print("HANDLE", repr(handle), repr(handle.exporters))
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key=sys.argv[4]))
    with lmscope.context(session_id="s-1", user_id="u-1"):
        print("ANSWER", dspy.Predict("question -> answer")(question="What is the capital of France?").answer)
    lmscope.force_flush()
    lmscope.uninstrument()
""")


def _run_app(lm_server, trace_file, exporters: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = app_env("LMSCOPE_", "OTEL_", "LANGFUSE_", "MLFLOW_", "PHOENIX_")
    return subprocess.run([sys.executable, "-c", _APP, lm_server.base_url, str(trace_file), exporters, LM_KEY],
                          env={**clean, **env}, capture_output=True, text=True, timeout=240, check=False)


def test_secrets_go_to_their_own_backend_only(lm_server, receiver, second_receiver, tmp_path) -> None:
    trace_file = tmp_path / "traces.jsonl"
    with OtlpReceiver() as third_receiver:
        done = _run_app(lm_server, trace_file, "langfuse,mlflow,phoenix,file,console", {
            "LANGFUSE_PUBLIC_KEY": "pk-lf-public", "LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
            "LANGFUSE_HOST": receiver.url, "MLFLOW_TRACKING_URI": second_receiver.url, "MLFLOW_EXPERIMENT_ID": "7",
            "MLFLOW_TRACKING_TOKEN": MLFLOW_TOKEN, "PHOENIX_COLLECTOR_ENDPOINT": third_receiver.url,
            "PHOENIX_API_KEY": PHOENIX_KEY, "OTEL_EXPORTER_OTLP_HEADERS": f"x-collector-key={COLLECTOR_KEY}"})
    assert done.returncode == 0, done.stderr
    assert "ANSWER" in done.stdout and "DEBUG" in done.stderr

    secrets = (LANGFUSE_SECRET, MLFLOW_TOKEN, COLLECTOR_KEY, LM_KEY, PHOENIX_KEY)
    for text in (done.stdout, done.stderr, trace_file.read_text()):
        assert not [secret for secret in secrets if secret in text]
    for stand_in in (receiver, second_receiver, third_receiver):
        assert sorted(r.name for r in stand_in.records()) == ["chat gpt-4o-mini", "predict"]
        for request in stand_in.requests:
            body = request.request.SerializeToString()
            assert not [secret for secret in secrets if secret.encode() in body]
    # Each backend got its own credential, and no other.
    langfuse_headers = " ".join(v for r in receiver.requests for v in r.headers.values())
    mlflow_headers = [r.headers for r in second_receiver.requests]
    assert "x-collector-key" not in langfuse_headers and MLFLOW_TOKEN not in langfuse_headers
    assert {(r.path, r.headers["authorization"], r.headers["x-mlflow-experiment-id"]) for r in second_receiver.requests
            } == {("/v1/traces", f"Bearer {MLFLOW_TOKEN}", "7")}
    assert not [h for h in mlflow_headers if "x-collector-key" in h or "x-langfuse-public-key" in h]
    assert PHOENIX_KEY not in langfuse_headers + " ".join(v for h in mlflow_headers for v in h.values())
    assert {(r.path, r.headers["authorization"]) for r in third_receiver.requests} == {
        ("/v1/traces", f"Bearer {PHOENIX_KEY}")}
    assert not [r for r in third_receiver.requests if "x-collector-key" in r.headers]


@pytest.mark.slow  # the app's force_flush() retries its two refused backends for about 7 s
def test_backends_down_do_not_fail_instrument_or_the_program(lm_server, tmp_path) -> None:
    down = refused_url()
    started = time.monotonic()
    done = _run_app(lm_server, tmp_path / "traces.jsonl", "jaeger,mlflow,file", {
        "LMSCOPE_JAEGER_ENDPOINT": down, "MLFLOW_TRACKING_URI": down, "MLFLOW_EXPERIMENT_NAME": "never reached"})
    assert done.returncode == 0, done.stderr
    baseline = _run_app(lm_server, tmp_path / "unused.jsonl", "none", {})
    answer = [line for line in baseline.stdout.splitlines() if line.startswith("ANSWER")]
    assert answer and [line for line in done.stdout.splitlines() if line.startswith("ANSWER")] == answer
    # One warning per exporter, naming it and where it sends (the presets' own log lines are held back),
    # and at exit one line counting what was dropped.
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING:lmscope:")]
    assert sorted(line.split(" cannot deliver spans to ")[0] for line in warnings if "cannot deliver" in line) == [
        "WARNING:lmscope:lmscope: exporter jaeger", "WARNING:lmscope:lmscope: exporter mlflow"]
    assert all(f"cannot deliver spans to {down}/v1/traces (connection refused)" in line
               for line in warnings if "cannot deliver" in line)
    assert [line for line in warnings if "spans were not exported" in line] == [
        f"WARNING:lmscope:lmscope: 4 spans were not exported; jaeger to {down}/v1/traces: 2 (2 export failed; "
        f"connection refused); mlflow to {down}/v1/traces: 2 (2 export failed; connection refused)"]
    assert len((tmp_path / "traces.jsonl").read_text().splitlines()) >= 1  # the file exporter is unaffected
    assert time.monotonic() - started < 120
