"""No secret in any exported byte, whatever `capture_content` says (issue 11), end to end.

A real DSPy program, run in a fresh interpreter against the stand-in LM server with `lmscope.instrument()`
exporting to the trace file, the console (its stderr), an OTLP/HTTP receiver, the Langfuse preset (OTLP/HTTP to a
second local receiver, as tests/backends/test_langfuse.py does; no Langfuse server runs here) and a Jaeger preset
whose endpoint refuses every export (so lmscope warns, naming the endpoint), with every log record at DEBUG
written by a handler on the root logger. 29 distinct secrets are planted: module inputs, tool arguments,
`dspy.context(...)` values, a provider's error body, exception messages, an endpoint's fragment, the LM's API key,
`lmscope.context(metadata=)`. Then `lmscope tree` and `lmscope report --html` read the file. Every output is
searched for every secret (as is, and base64- or gzip-decoded where a transport encodes); with
`capture_content=false`, also for the prompt's and the LM's text. MLflow is not included: its preset needs a
real mlflow server (tests/backends/test_mlflow.py starts one, slow); its exporter is OTLP/HTTP like Langfuse's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import otlp_servers
import pytest
from app_env import app_env
from google.protobuf.json_format import MessageToJson

from lmscope._lm_server import StandInLM

FAILING_MODEL = "refused-model"
PROMPT_MARK = "PROMPTMARK"
ANSWER_MARK = "ANSWERMARK"


def _hex(chars: int) -> str:
    return secrets.token_hex((chars + 1) // 2)[:chars]


def _jwt() -> str:
    return f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{_hex(16)}.{_hex(24)}"


def plant() -> dict[str, str]:
    """29 distinct secrets, by where they are planted (fresh random values each run)."""
    return {
        # module inputs: in text, and under credential keys of dict inputs (which DSPy writes into the prompt)
        "input_openai_key": "sk-" + _hex(32),
        "input_aws_key": "AKIA" + _hex(16).upper(),
        "input_bearer_token": _hex(32),
        "input_basic_auth": base64.b64encode(f"alice:{_hex(12)}".encode()).decode(),
        "input_fragment_token": _hex(20),
        "input_cookie": _hex(20),
        "input_jwt": _jwt(),
        "input_password": _hex(16),
        # tool arguments
        "tool_anthropic_key": "sk-ant-api03-" + _hex(32),
        "tool_url_token": _hex(20),
        "tool_set_cookie": _hex(20),
        "tool_github_token": "ghp_" + _hex(36),
        # dspy.context(...) keyword arguments (`note` holds "Bearer <this>": a key that names no credential)
        **{f"context_{name}": _hex(24) for name in ("passwd", "session", "cookie", "bearer", "api_key",
                                                     "private_key", "note_bearer")},
        "context_jwt": _jwt(),
        # what a provider's error body echoes
        "provider_openai_key": "sk-proj-" + _hex(40),
        "provider_url_key": _hex(20),
        "provider_google_key": "AIza" + _hex(35),
        # exception messages
        "exception_url_password": _hex(14),
        "exception_password": _hex(14),
        "exception_github_pat": "github_pat_" + _hex(30),
        # lmscope's own warnings: an endpoint with a token in its fragment
        "endpoint_fragment_token": _hex(20),
        # the LM's API key (sent as a header to the LM only), and lmscope.context(metadata=)
        "lm_api_key": "sk-" + _hex(40),
        "metadata_api_key": _hex(20),
    }


_APP = textwrap.dedent("""
    import json, logging, sys

    config = json.loads(open(sys.argv[1]).read())
    S = config["secrets"]
    class JsonLines(logging.FileHandler):
        def format(self, record):
            return json.dumps({"name": record.name, "text": super().format(record)})

    handler = JsonLines(config["log"])
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)

    import dspy
    import lmscope

    lmscope.instrument(exporters=["file", "console", "otlp", "langfuse", "jaeger"], file_path=config["file"],
                       otlp_endpoint=config["otlp"], jaeger_endpoint=config["jaeger"],
                       capture_content=config["capture"])
    lm = dspy.LM("openai/gpt-4o-mini", api_base=config["lm"], api_key=S["lm_api_key"], cache=False)
    refused = dspy.LM("openai/" + config["failing_model"], api_base=config["lm"], api_key=S["lm_api_key"],
                      cache=False, num_retries=0)
    dspy.configure(lm=lm)

    def lookup(url: str, api_key: str, headers: dict, note: str) -> str:
        "Fetch a document."
        return "fetched"

    fetch = dspy.Tool(lookup)

    class Connect(dspy.Module):
        def forward(self, target: str):
            raise ConnectionError(
                f"cannot reach postgres://bob:{S['exception_url_password']}@db.internal:5432/app "
                f"(password={S['exception_password']}, deploy token {S['exception_github_pat']})")

    class Program(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.Predict("question, request, config -> answer")
            self.count = dspy.Predict("question -> count: int")
            self.connect = Connect()

        def forward(self, question, request, config):
            fetch(url=f"https://files.example.com/get?token={S['tool_url_token']}&page=2", api_key=S["tool_anthropic_key"],
                  headers={"Set-Cookie": f"session={S['tool_set_cookie']}; Path=/"},
                  note=f"clone with {S['tool_github_token']}")
            answer = self.answer(question=question, request=request, config=config)
            try:
                self.count(question=question)  # the LM answers text where an int belongs: adapter fallback
            except Exception as exc:
                print("COUNT FAILED", type(exc).__name__)
            try:
                self.connect(target="db")
            except ConnectionError:
                print("CONNECT FAILED")
            try:
                with dspy.context(lm=refused):
                    dspy.Predict("question -> answer")(question=question)
            except Exception as exc:
                print("PROVIDER REFUSED", type(exc).__name__)
            return answer

    question = (f"{config['prompt_mark']}: why is my key {S['input_openai_key']} and {S['input_aws_key']} refused "
                f"with Basic {S['input_basic_auth']} at https://app.example.com/cb#access_token="
                f"{S['input_fragment_token']}&state=1 for {S['input_jwt']}?")
    request = {"Authorization": "Bearer " + S["input_bearer_token"], "Cookie": "sid=" + S["input_cookie"]}
    with lmscope.context(session_id="s-1", metadata={"api_key": S["metadata_api_key"]}), dspy.context(
            passwd=S["context_passwd"], session=S["context_session"], cookie=S["context_cookie"],
            jwt=S["context_jwt"], bearer=S["context_bearer"], api_key=S["context_api_key"],
            private_key=S["context_private_key"], note="Bearer " + S["context_note_bearer"], temperature=0.1):
        print("ANSWER", Program()(question=question, request=request, config={"password": S["input_password"]}).answer)
    lmscope.force_flush()
""")


_EXPORT_PATH_LOGGERS = ("lmscope", "opentelemetry", "urllib3", "requests", "grpc", "langfuse", "mlflow")
"""Loggers of lmscope and of what exports for it; records of every logger are caught at DEBUG, but the program's
own libraries' are not lmscope's to scrub: LiteLLM's DEBUG log prints each request (a curl line with the prompt)."""


def _decoded_views(blob: bytes) -> list[bytes]:
    """`blob`, and what its gzip body and base64 runs decode to (where a transport or format encodes)."""
    views = [blob]
    if blob[:2] == b"\x1f\x8b":
        views.append(gzip.decompress(blob))
    for run in re.findall(rb"[A-Za-z0-9+/_-]{16,}={0,2}", blob):
        for altchars in (None, b"-_"):
            with contextlib.suppress(binascii.Error, ValueError):
                views.append(base64.b64decode(run + b"=" * (-len(run) % 4), altchars=altchars))
    return views


def _leaks(outputs: dict[str, bytes], needles: dict[str, str]) -> list[str]:
    found = []
    for where, blob in outputs.items():
        views = _decoded_views(blob)
        for name, needle in needles.items():
            if any(needle.encode() in view for view in views):
                found.append(f"{name} in {where}")
    return found


def _receiver_outputs(name: str, receiver: otlp_servers.OtlpReceiver) -> dict[str, bytes]:
    outputs = {}
    for index, received in enumerate(receiver.requests):
        outputs[f"{name} request {index} body"] = received.request.SerializeToString()
        outputs[f"{name} request {index} decoded"] = MessageToJson(received.request).encode()
    outputs[f"{name} records"] = repr(receiver.records()).encode()
    return outputs


def _run_app(tmp_path: Path, capture: bool, planted: dict[str, str], lm: StandInLM, otlp: str, langfuse: str,
             refusing: str) -> dict[str, bytes]:
    trace_file, log_file, config_file = tmp_path / "traces.jsonl", tmp_path / "app.log", tmp_path / "config.json"
    config_file.write_text(json.dumps({
        "secrets": planted, "file": str(trace_file), "log": str(log_file), "capture": capture, "lm": lm.base_url,
        "otlp": otlp + "/v1/traces", "failing_model": FAILING_MODEL, "prompt_mark": PROMPT_MARK,
        "jaeger": f"{refusing}/v1/traces?tenant=t1#access_token={planted['endpoint_fragment_token']}"}))
    env = app_env("LMSCOPE_", "OTEL_", "OPENINFERENCE_", "LANGFUSE_", "MLFLOW_")
    env.update({"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": langfuse,
                "DSPY_CACHEDIR": str(tmp_path / "dspy-cache"), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    done = subprocess.run([sys.executable, "-c", _APP, str(config_file)], capture_output=True, env=env,
                          cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    stdout = done.stdout.decode()
    assert "COUNT FAILED AdapterParseError" in stdout and "CONNECT FAILED" in stdout, stdout
    assert "PROVIDER REFUSED" in stdout and f"ANSWER {ANSWER_MARK}" in stdout, stdout
    tree = subprocess.run([sys.executable, "-m", "lmscope", "tree", str(trace_file)], capture_output=True, env=env,
                          timeout=120)
    html_path = tmp_path / "report.html"
    report = subprocess.run([sys.executable, "-m", "lmscope", "report", str(trace_file), "--html", str(html_path)],
                            capture_output=True, env=env, timeout=120)
    assert tree.returncode == 0 and report.returncode == 0, (tree.stderr, report.stderr)
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    ours = "\n".join(record["text"] for record in records if record["name"].startswith(_EXPORT_PATH_LOGGERS))
    return {"trace file": trace_file.read_bytes(),
            "console (stderr)": done.stderr, "root log at DEBUG": ours.encode(),
            "lmscope tree": tree.stdout + tree.stderr, "lmscope report --html": html_path.read_bytes(),
            "lmscope report stdout": report.stdout + report.stderr}


@pytest.mark.parametrize("capture", [True, False], ids=["capture_content=true", "capture_content=false"])
def test_no_planted_secret_reaches_any_export(tmp_path: Path, capture: bool) -> None:
    planted = plant()
    assert len(planted) == 29 and len(set(planted.values())) == 29
    answer = f"{ANSWER_MARK}-{_hex(8)}"
    with StandInLM(model_answers={"answer": answer, "count": f"{ANSWER_MARK} many, not a number"}) as lm, \
            otlp_servers.OtlpReceiver() as otlp, otlp_servers.OtlpReceiver() as langfuse, \
            otlp_servers.StatusServer(400) as refusing:
        lm.failures[FAILING_MODEL] = (401, (
            f"Incorrect API key provided: {planted['provider_openai_key']}. Request to "
            f"https://generativelanguage.googleapis.com/v1beta/models?key={planted['provider_url_key']} failed; "
            f"key {planted['provider_google_key']} is not valid."))
        outputs = _run_app(tmp_path, capture, planted, lm, otlp.url, langfuse.url, refusing.url)
        outputs.update(_receiver_outputs("OTLP receiver", otlp))
        outputs.update(_receiver_outputs("Langfuse receiver", langfuse))
        assert otlp.requests and langfuse.requests and refusing.posts

    # Everything was exported and shown: spans in the file, the receivers, the console; lmscope's warning about
    # the refusing endpoint (whose fragment holds a token).
    text = {where: blob.decode("utf-8", "replace") for where, blob in outputs.items()}
    assert "execute_tool lookup" in text["trace file"] and "execute_tool lookup" in text["console (stderr)"]
    assert "cannot deliver spans to" in text["root log at DEBUG"]
    assert "lmscope.settings.passwd" in text["trace file"] and "[REDACTED]" in text["trace file"]
    assert "ConnectionError" in text["lmscope tree"] and "ConnectionError" in text["lmscope report --html"]

    needles = dict(planted)
    # A part of each too: a repr may shorten a value (`'sk-pro...abcd'`), a scrubber may keep a prefix.
    needles.update({f"{name} (middle)": value[len(value) // 2 - 6: len(value) // 2 + 6]
                    for name, value in planted.items()})
    assert _leaks(outputs, needles) == []
    if capture:
        assert PROMPT_MARK in text["trace file"] and answer in text["trace file"]
    else:
        assert _leaks(outputs, {"prompt text": PROMPT_MARK, "LM answer": ANSWER_MARK}) == []
