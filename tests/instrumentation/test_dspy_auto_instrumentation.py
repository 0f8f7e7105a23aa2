"""`opentelemetry-instrument python app.py`: a DSPy app with no lmscope code gets lmscope's span tree.

The `lmscope_dspy` entry point of the `opentelemetry_instrumentor` group (pyproject.toml) is loaded by
OpenTelemetry's auto-instrumentation after the distro's configurator set the global providers (the runs:
tests/instrumentation/otel_launcher.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from otel_launcher import APP, QA_TREE, launcher, otel_env, span_attributes, span_tree

from lmscope._lm_server import count_prompt_tokens, count_tokens
from lmscope.telemetry import _semconv as semconv

pytestmark = pytest.mark.slow


def _run_app(clean_env, lm_server, receiver, **extra_env):
    """Runs APP under `opentelemetry-instrument`, exporting to `receiver`; returns what it printed."""
    app = clean_env / "app.py"
    app.write_text(APP)
    done = subprocess.run([str(launcher()), sys.executable, str(app), lm_server.base_url],
                          env=otel_env(clean_env, receiver, **extra_env), cwd=clean_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_opentelemetry_instrument_traces_a_dspy_app_with_no_lmscope_code(clean_env, lm_server, receiver):
    result = _run_app(clean_env, lm_server, receiver, OTEL_SERVICE_NAME="auto-app")
    assert result["answer"]

    spans = receiver.spans()
    assert span_tree(spans) == QA_TREE
    scopes = {scope.scope.name for request in (r.request for r in receiver.requests)
              for resource in request.resource_spans for scope in resource.scope_spans}
    assert scopes == {"lmscope.instrumentation.dspy"}
    [chat] = [span for span in spans if span.name == "chat gpt-4o-mini"]
    attributes = span_attributes(chat)
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
        keys = set(span_attributes(span))
        assert semconv.INPUT_VALUE not in keys and semconv.OUTPUT_VALUE not in keys
