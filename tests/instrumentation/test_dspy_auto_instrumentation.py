"""`opentelemetry-instrument python app.py`: a DSPy app with no lmscope code gets lmscope's span tree.

The `lmscope_dspy` entry point of the `opentelemetry_instrumentor` group (pyproject.toml) is loaded by
OpenTelemetry's auto-instrumentation after the distro's configurator set the global providers. It needs
`opentelemetry-distro` and an install of lmscope that carries the entry point: the dev extra has both (.ci/test.sh
installs it). The dev extra also installs OpenInference's DSPy and LiteLLM instrumentors, whose entry points are
named `dspy` and `litellm`: the runs here turn those off by name, as a user who wants lmscope's spans alone would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv

pytestmark = pytest.mark.slow

APP = textwrap.dedent("""
    import json, sys

    import dspy

    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.ChainOfThought("question -> answer")

        def forward(self, question):
            return self.answer(question=question)

    lm = dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-test-key", cache=False)
    dspy.configure(lm=lm)
    answer = QA()(question="What is the capital of France?").answer
    history = [{"messages": entry["messages"], "outputs": entry["outputs"], "usage": dict(entry["usage"])}
               for entry in lm.history]
    print(json.dumps({"answer": answer, "history": history}))
""")


def _tree(spans):
    ids = {span.span_id for span in spans}
    children = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
        (children.setdefault(span.parent_span_id, []) if span.parent_span_id in ids else roots).append(span)

    def node(span):
        return (span.name, [node(child) for child in children.get(span.span_id, [])])

    return [node(root) for root in roots]


def _attributes(span):
    from google.protobuf.json_format import MessageToDict

    values = {}
    for item in span.attributes:
        value = MessageToDict(item.value)
        values[item.key] = next(iter(value.values())) if value else None
    return values


def _run_app(clean_env, lm_server, receiver, **extra_env):
    """Runs APP under `opentelemetry-instrument` (this venv's), exporting to `receiver`; returns what it printed.
    OpenInference's instrumentors (entry points `dspy`, `litellm`) are turned off by name."""
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    entry_points = [ep for ep in metadata.entry_points(group="opentelemetry_instrumentor") if ep.name == "lmscope_dspy"]
    if not launcher.exists() or not entry_points:
        pytest.fail("needs opentelemetry-distro and lmscope's entry point in this venv: pip install -e '.[dev]'")
    app = clean_env / "app.py"
    app.write_text(APP)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "dspy,litellm",
           "DSPY_CACHEDIR": str(clean_env / "dspy-cache"), **extra_env}
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run([str(launcher), sys.executable, str(app), lm_server.base_url], env=env, cwd=clean_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_opentelemetry_instrument_traces_a_dspy_app_with_no_lmscope_code(clean_env, lm_server, receiver):
    result = _run_app(clean_env, lm_server, receiver, OTEL_SERVICE_NAME="auto-app")
    assert result["answer"]

    spans = receiver.spans()
    assert _tree(spans) == [("qa", [("qa.answer", [("qa.answer.predict", [("chat gpt-4o-mini", [])])])])]
    scopes = {scope.scope.name for request in (r.request for r in receiver.requests)
              for resource in request.resource_spans for scope in resource.scope_spans}
    assert scopes == {"lmscope.instrumentation.dspy"}
    [chat] = [span for span in spans if span.name == "chat gpt-4o-mini"]
    attributes = _attributes(chat)
    [entry] = result["history"]
    prompt_tokens = count_prompt_tokens(entry["messages"])
    completion_tokens = count_tokens(entry["outputs"][0])
    assert (entry["usage"]["prompt_tokens"], entry["usage"]["completion_tokens"]) == (prompt_tokens,
                                                                                      completion_tokens)
    assert int(attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]) == prompt_tokens
    assert int(attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == completion_tokens
    assert attributes[semconv.INPUT_VALUE]  # content captured by default, as lmscope.instrument() does
    resource = receiver.requests[0].request.resource_spans[0].resource
    assert {item.key: item.value.string_value for item in resource.attributes}["service.name"] == "auto-app"


def test_the_privacy_switches_apply_under_opentelemetry_instrument(clean_env, lm_server, receiver):
    _run_app(clean_env, lm_server, receiver, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="false")
    spans = receiver.spans()
    assert len(spans) == 4
    for span in spans:
        keys = set(_attributes(span))
        assert semconv.INPUT_VALUE not in keys and semconv.OUTPUT_VALUE not in keys
