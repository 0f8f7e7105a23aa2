"""Tracing leaves the app's `random` sequence alone: lmscope's span ids come from a generator of its own, on its own
provider and on the app's (when that one has the SDK's default generator), so a seeded app draws the same numbers
traced as untraced, in a fresh process."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest
from app_env import app_env

APP = textwrap.dedent("""
    import json, random, sys
    if sys.argv[2] == "app-provider":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
    import lmscope
    lmscope.instrument(exporters="none")
    import litellm
    random.seed(42)
    ask = dict(model="openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-anything")
    litellm.completion(messages=[{"role": "user", "content": "Capital of France?"}], **ask)
    for _ in litellm.completion(messages=[{"role": "user", "content": "Capital of Japan?"}], stream=True, **ask):
        pass
    with lmscope.track() as usage:
        litellm.embedding(model="openai/text-embedding-3-small", input=["Paris"], api_base=sys.argv[1],
                          api_key="sk-anything")
    print(json.dumps({"drawn": [random.random() for _ in range(3)], "calls": usage.total()["calls"]}))
""")


@pytest.mark.parametrize("provider", ["own-provider", "app-provider"])
def test_a_seeded_apps_random_numbers_are_those_of_an_untraced_run(lm_server, tmp_path, provider):
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    done = subprocess.run([sys.executable, "-c", APP, lm_server.base_url, provider], env=env, capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["calls"] == 1  # traced, and counted
    seeded = random.Random(42)
    assert result["drawn"] == [seeded.random() for _ in range(3)]


def test_an_instrumentor_given_the_apps_provider_leaves_the_apps_random_numbers_alone(lm_server):
    """As `opentelemetry-instrument` runs lmscope's instrumentors: on a provider of the app's (the SDK's default id
    generator), not through `lmscope.instrument()`."""
    import litellm
    from memory_spans import memory_provider

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    provider, exporter = memory_provider()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        random.seed(42)
        litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}],
                           api_base=lm_server.base_url, api_key="sk-anything")
        drawn = [random.random() for _ in range(3)]
    finally:
        instrumentor.uninstrument()
    assert [span.name for span in exporter.get_finished_spans()] == ["chat gpt-4o-mini"]
    seeded = random.Random(42)
    assert drawn == [seeded.random() for _ in range(3)]


STANDALONE_APP = textwrap.dedent("""
    import json, random, sys
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor
    LiteLLMInstrumentor().instrument(capture_content=True)  # no provider yet: the app sets one below
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    import litellm
    random.seed(42)
    litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}],
                       api_base=sys.argv[1], api_key="sk-anything")
    print(json.dumps({"drawn": [random.random() for _ in range(3)],
                      "spans": [span.name for span in exporter.get_finished_spans()]}))
""")


def test_an_instrumentor_set_up_before_the_apps_provider_leaves_the_apps_random_numbers_alone(lm_server, tmp_path):
    """`LiteLLMInstrumentor().instrument()` with no provider given, before the app sets the global one: its spans go
    through the app's provider once it is there, with lmscope's ids all the same."""
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    done = subprocess.run([sys.executable, "-c", STANDALONE_APP, lm_server.base_url], env=env, capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["spans"] == ["chat gpt-4o-mini"]
    seeded = random.Random(42)
    assert result["drawn"] == [seeded.random() for _ in range(3)]
