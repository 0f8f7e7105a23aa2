"""The demo's RAG program traced through lmscope's own exporters, on a private TracerProvider.

`instrument()` sets the process-wide provider once; these tests build the same processors it builds
(`build_span_processors`) on a provider of their own, so each test can point the exporters elsewhere.
An in-memory copy of every finished span is what the receivers must have got.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

LM_KEY = "sk-lm-SECRET-never-exported-7781"
SESSION, USER, TAGS, METADATA = "s-backends", "u-backends", ["beta", "rag"], {"plan": "pro"}


@pytest.fixture(autouse=True)
def _no_outer_settings(clean_env) -> None:
    """Every test here starts from no LMSCOPE_/OTEL_/LANGFUSE_/MLFLOW_ variable (tests/conftest.py)."""


@pytest.fixture
def traced_run(lm_server) -> Callable[..., list]:
    """traced_run(options) -> SpanRecords of: a fresh question, the same again (DSPy cache hit), a second question."""
    import dspy
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import lmscope
    from lmscope._demo import build_program
    from lmscope.instrumentation.dspy import DSPyInstrumentor
    from lmscope.telemetry._pipeline import build_span_processors
    from lmscope.telemetry._trace_file import records_from_spans
    from lmscope.telemetry._tracer_provider import build_resource

    def run(options) -> list:
        provider = TracerProvider(resource=build_resource(options))
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for processor in build_span_processors(options):
            provider.add_span_processor(processor)
        instrumentor = DSPyInstrumentor()
        instrumentor.instrument(provider.get_tracer("lmscope.instrumentation.dspy"), capture_content=True)
        unique = uuid.uuid4().hex[:8]  # DSPy's cache is shared by the session: start cold
        try:
            lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key=LM_KEY)
            program = build_program()
            with dspy.context(lm=lm), lmscope.context(session_id=SESSION, user_id=USER, tags=TAGS,
                                                      metadata=METADATA):
                program(question=f"What is the capital of France? ({unique})")
                program(question=f"What is the capital of France? ({unique})")
                program(question=f"Which river flows through Paris? ({unique})")
        finally:
            instrumentor.uninstrument()
            assert provider.force_flush() is True
            provider.shutdown()
        return records_from_spans(memory.get_finished_spans())

    return run
