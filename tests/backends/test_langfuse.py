"""`exporters=["langfuse"]`: Langfuse's documented OTel ingestion contract, checked on a local receiver.

A Langfuse server cannot run on this machine (it needs ClickHouse, Postgres, Redis, S3 and two Node services
from container images). These tests stand in for it with an OTLP/HTTP receiver on 127.0.0.1 and check what
Langfuse's public OTel endpoint requires and what its ingestion (OtelIngestionProcessor, ObservationTypeMapper)
reads: the path `/api/public/otel/v1/traces`, Basic auth from the project keys, the headers the Langfuse SDK
sends (ingestion version 4), gzip, and the exact attributes of every span.
"""

from __future__ import annotations

import base64
import json
import threading
from importlib import metadata

import pytest
from opentelemetry.sdk.trace import TracerProvider

from lmscope.telemetry._exporters.endpoints import LANGFUSE_DEFAULT_HOST
from lmscope.telemetry._exporters.langfuse import langfuse_attributes, langfuse_target
from lmscope.telemetry._options import ConfigError, resolve_options

PUBLIC, SECRET = "pk-lf-1234", "sk-lf-SECRET-5678"
COLLECTOR_KEY = "collector-SECRET-must-stay-home"

# What makes Langfuse treat an observation as a priced generation, or sum its usage (ObservationTypeMapper,
# extractModelName, extractUsageDetails).
MODEL_KEYS = {"langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model", "llm.model_name",
              "model", "ai.model.id", "llm.response.model"}
USAGE_PREFIXES = ("gen_ai.usage.", "llm.token_count", "langfuse.observation.usage_details",
                  "langfuse.observation.cost_details")


@pytest.fixture
def langfuse_env(monkeypatch: pytest.MonkeyPatch, receiver) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
    # A collector's key in the standard variable must not be forwarded to Langfuse.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-collector-key={COLLECTOR_KEY}")


def expected_additions(attributes: dict) -> dict:
    """Langfuse's keys for one lmscope span, spelled out from Langfuse's mapping rules."""
    kind = attributes["openinference.span.kind"]
    added: dict = {"langfuse.observation.type": {"LLM": "generation", "CHAIN": "chain",
                                                 "RETRIEVER": "retriever"}[kind],
                   "langfuse.trace.tags": ("beta", "rag"), "langfuse.trace.metadata": '{"plan": "pro"}'}
    if kind == "LLM":
        tokens_in, tokens_out = attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]
        cached = attributes["gen_ai.usage.cache_read.input_tokens"]
        usage = {"input": tokens_in - cached, "output": tokens_out, "total": tokens_in + tokens_out}
        if cached:
            usage["input_cached_tokens"] = cached
        added["langfuse.observation.usage_details"] = json.dumps(usage)
        added["langfuse.observation.cost_details"] = json.dumps({"total": attributes["gen_ai.usage.cost"]})
    return added


def test_wire_contract_path_auth_headers_gzip(langfuse_env, receiver, traced_run) -> None:
    traced_run(resolve_options(exporters="langfuse"))

    token = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    for request in receiver.requests:
        assert request.path == "/api/public/otel/v1/traces"
        headers = {name: value for name, value in request.headers.items()
                   if name not in ("host", "content-length", "user-agent", "accept", "connection")}
        assert headers == {
            "authorization": f"Basic {token}",
            "x-langfuse-public-key": PUBLIC,
            "x-langfuse-ingestion-version": "4",
            "x-langfuse-sdk-name": "lmscope",
            "x-langfuse-sdk-version": metadata.version("lmscope"),
            "content-type": "application/x-protobuf",
            "content-encoding": "gzip",
            "accept-encoding": "gzip, deflate",
        }
    assert receiver.requests


def test_every_span_reads_as_langfuse_expects(langfuse_env, receiver, traced_run) -> None:
    recorded = {record.span_id: record for record in traced_run(resolve_options(exporters="langfuse"))}
    received = {record.span_id: record for record in receiver.records()}
    assert received.keys() == recorded.keys()

    for span_id, span in received.items():
        original = recorded[span_id].attributes
        assert span.attributes == {**original, **expected_additions(original)}, span.name
        assert (span.name, span.parent_span_id, span.resource) == (
            recorded[span_id].name, recorded[span_id].parent_span_id, recorded[span_id].resource)
        assert (span.attributes["session.id"], span.attributes["user.id"]) == ("s-backends", "u-backends")
        if span.attributes["langfuse.observation.type"] != "generation":
            # Module spans: nothing Langfuse would price or add to the trace's usage.
            assert not MODEL_KEYS & span.attributes.keys(), span.name
            assert not [key for key in span.attributes if key.startswith(USAGE_PREFIXES)], span.name

    types = sorted(span.attributes["langfuse.observation.type"] for span in received.values())
    assert types == ["chain"] * 12 + ["generation"] * 6 + ["retriever"] * 3
    generations = [s.attributes for s in received.values() if s.name == "chat gpt-4o-mini"]
    # The DSPy cache hits are priced at 0 explicitly; the prompt-cache hit keeps its cached tokens apart.
    usages = sorted(json.loads(g["langfuse.observation.usage_details"])["total"] for g in generations)
    assert usages[:2] == [0, 0] and all(usage > 0 for usage in usages[2:])
    assert sorted(json.loads(g["langfuse.observation.cost_details"])["total"] for g in generations)[:2] == [0.0, 0.0]
    assert any("input_cached_tokens" in g["langfuse.observation.usage_details"] for g in generations)


def test_host_from_langfuse_base_url_before_langfuse_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    assert langfuse_target(resolve_options(exporters="langfuse")).host == LANGFUSE_DEFAULT_HOST
    monkeypatch.setenv("LANGFUSE_HOST", "http://langfuse.internal:3000/")
    assert langfuse_target(resolve_options(exporters="langfuse")).host == "http://langfuse.internal:3000"
    monkeypatch.setenv("LANGFUSE_BASE_URL", "https://eu.example")
    options = resolve_options(exporters="langfuse")
    assert (langfuse_target(options).host, options.sources["langfuse_host"]) == ("https://eu.example",
                                                                                "LANGFUSE_BASE_URL")
    assert langfuse_target(resolve_options(exporters="langfuse", langfuse_host="http://arg")).host == "http://arg"


@pytest.mark.parametrize(("env", "missing"), [
    ({}, "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, which are"),
    ({"LANGFUSE_PUBLIC_KEY": PUBLIC}, "LANGFUSE_SECRET_KEY, which is"),
    ({"LANGFUSE_SECRET_KEY": SECRET}, "LANGFUSE_PUBLIC_KEY, which is"),
    ({"LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": "  "}, "LANGFUSE_SECRET_KEY, which is"),
])
def test_missing_credentials_fail_with_one_line_naming_the_variables(monkeypatch: pytest.MonkeyPatch,
                                                                     env: dict, missing: str) -> None:
    import lmscope

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    batch_threads = len([t for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")])
    with pytest.raises(ConfigError) as caught:
        lmscope.instrument(exporters=["file", "langfuse"])
    assert str(caught.value) == (
        f"lmscope: exporters: 'langfuse' needs {missing} not set (from argument); allowed: set LANGFUSE_PUBLIC_KEY "
        "and LANGFUSE_SECRET_KEY (a project's API keys), or create a langfuse.Langfuse(...) client before "
        "lmscope.instrument()")
    assert SECRET not in str(caught.value)
    assert lmscope.active() is None
    # The file exporter built before the failure was shut down again: no export thread left behind.
    assert len([t for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")]) == batch_threads


def test_reasoning_and_cached_tokens_become_langfuse_usage_types() -> None:
    attributes = {"openinference.span.kind": "LLM", "gen_ai.usage.input_tokens": 1000,
                  "gen_ai.usage.cache_read.input_tokens": 800, "gen_ai.usage.output_tokens": 300,
                  "gen_ai.usage.reasoning.output_tokens": 200, "gen_ai.usage.cost": 0.0042}
    assert langfuse_attributes(attributes) == {
        "langfuse.observation.type": "generation",
        "langfuse.observation.usage_details": json.dumps({"input": 200, "output": 100, "total": 1300,
                                                          "input_cached_tokens": 800,
                                                          "output_reasoning_tokens": 200}),
        "langfuse.observation.cost_details": json.dumps({"total": 0.0042})}


def test_spans_of_other_instrumentations_keep_langfuses_own_mapping() -> None:
    """On an app's shared provider lmscope's exporters also see the app's spans: only context keys are added."""
    assert langfuse_attributes({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}) == {}
    assert langfuse_attributes({"http.route": "/ask", "tag.tags": ("beta",)}) == {"langfuse.trace.tags": ("beta",)}


def test_keys_and_host_of_the_apps_langfuse_client(receiver, traced_run) -> None:
    """An app that already set up `langfuse.Langfuse(...)` needs no LANGFUSE_* variables for lmscope."""
    from langfuse import Langfuse
    from langfuse._client.resource_manager import LangfuseResourceManager

    client = Langfuse(public_key="pk-lf-app", secret_key="sk-lf-app", base_url=receiver.url,
                      tracer_provider=TracerProvider())
    try:
        target = langfuse_target(resolve_options(exporters="langfuse"))
        assert (target.host, target.public_key, target.secret_key) == (receiver.url, "pk-lf-app", "sk-lf-app")
        assert "sk-lf-app" not in repr(target)
        recorded = traced_run(resolve_options(exporters="langfuse"))
    finally:
        client.shutdown()
        LangfuseResourceManager.reset()
    ours = [r for r in receiver.requests if r.headers.get("x-langfuse-sdk-name") == "lmscope"]
    assert {r.headers["authorization"] for r in ours} == {"Basic " + base64.b64encode(b"pk-lf-app:sk-lf-app").decode()}
    assert sorted(s.span_id for s in receiver.records() if s.span_id in {r.span_id for r in recorded}) == sorted(
        r.span_id for r in recorded)


def test_host_of_the_apps_client_with_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, receiver,
                                                                  second_receiver, traced_run) -> None:
    """Keys in LANGFUSE_*_KEY and `Langfuse(base_url=<a region>)` in the app: the client's host is where the
    project lives, so spans go there, not to the default cloud host; a langfuse_host that is set still wins.
    Fails if the client's host is used only when the keys also come from the client."""
    from langfuse import Langfuse
    from langfuse._client.resource_manager import LangfuseResourceManager

    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    client = Langfuse(public_key=PUBLIC, secret_key=SECRET, base_url=receiver.url, tracer_provider=TracerProvider())
    try:
        target = langfuse_target(resolve_options(exporters="langfuse"))
        assert (target.host, target.public_key, target.secret_key) == (receiver.url, PUBLIC, SECRET)
        recorded = traced_run(resolve_options(exporters="langfuse"))
        monkeypatch.setenv("LANGFUSE_HOST", second_receiver.url)
        assert langfuse_target(resolve_options(exporters="langfuse")).host == second_receiver.url
    finally:
        client.shutdown()
        LangfuseResourceManager.reset()
    ours = [r for r in receiver.requests if r.headers.get("x-langfuse-sdk-name") == "lmscope"]
    assert {r.path for r in ours} == {"/api/public/otel/v1/traces"}
    assert {s.span_id for s in receiver.records()} >= {r.span_id for r in recorded}


def test_a_span_with_unreadable_usage_loses_that_attribute_not_its_batch(langfuse_env, receiver,
                                                                         swallow_internal_errors) -> None:
    """An app's own span on a shared provider can carry anything. Langfuse's ingestion parses usage keys as
    numbers and rejects the whole request over one bad value, so Langfuse's copy of that span goes without it;
    and a span whose Langfuse keys cannot be worked out at all goes as it is. The rest of the batch is untouched."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from lmscope.telemetry._exporters.langfuse import langfuse_span_exporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(langfuse_span_exporter(resolve_options(exporters="langfuse"))))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("app step", attributes={"gen_ai.usage.input_tokens": "lots",
                                                             "llm.token_count.total": "n/a", "http.route": "/ask"}):
        tracer.start_span("chat app-model", attributes={
            "openinference.span.kind": "LLM", "gen_ai.usage.input_tokens": "7", "gen_ai.usage.output_tokens": 3,
            "gen_ai.usage.cost": "free"}).end()
        tracer.start_span("fine", attributes={"openinference.span.kind": "CHAIN"}).end()
    provider.shutdown()

    received = {record.name: record.attributes for record in receiver.records()}
    assert received == {
        "app step": {"http.route": "/ask"},
        "chat app-model": {"openinference.span.kind": "LLM", "gen_ai.usage.output_tokens": 3,
                           "langfuse.observation.type": "generation"},
        "fine": {"openinference.span.kind": "CHAIN", "langfuse.observation.type": "chain"},
    }
