"""An app's span processor that raises sits on the same provider as lmscope's spans: DSPy calls still complete.

The SDK's SynchronousMultiSpanProcessor calls processors in order and catches nothing: an app processor's
`on_start` raises out of `tracer.start_span`, its `on_end` out of `span.end()`. lmscope reports that once
(`report_internal_error`; the `swallow_internal_errors` fixture lets it behave as in an app) and the program
returns its own result; processors before the raising one still get every span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dspy
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.instrumentation.dspy import DSPyInstrumentor

pytestmark = pytest.mark.usefixtures("swallow_internal_errors")


class Raising(SpanProcessor):
    def __init__(self, *, on_start_for: str | None = None, on_end: bool = False) -> None:
        self.on_start_for = on_start_for
        self.raise_on_end = on_end

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if self.on_start_for is not None and span.name.startswith(self.on_start_for):
            raise RuntimeError("app processor on_start bug")

    def on_end(self, span: ReadableSpan) -> None:
        if self.raise_on_end:
            raise RuntimeError("app processor on_end bug")


@pytest.fixture
def expected_answer(rag, make_lm, unique) -> str:
    """What the program answers with no instrumentation at all (the stand-in LM answers deterministically)."""
    with dspy.context(lm=make_lm()):
        return str(rag(question=f"What is the capital of France? {unique}").answer)


@pytest.fixture
def traced(request: pytest.FixtureRequest, expected_answer: str) -> Iterator[InMemorySpanExporter]:
    """DSPy traced on a provider whose processors are an in-memory exporter, then the app's `request.param`
    (after `expected_answer` ran untraced)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(request.param)
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=False)
    yield exporter
    instrumentor.uninstrument()
    dspy.configure(lm=None)


@pytest.mark.parametrize("traced", [Raising(on_start_for="chat ")], indirect=True)
def test_an_on_start_that_raises_costs_only_that_span(traced, rag, make_lm, unique, expected_answer, tree,
                                                      caplog) -> None:
    dspy.configure(lm=make_lm())
    result = rag(question=f"What is the capital of France? {unique}")
    assert str(result.answer) == expected_answer
    # The LM spans could not start; the module spans around them are all there, nested as usual.
    assert tree(traced.get_finished_spans()) == [("rag", [("rag.rewrite", []), ("rag.retrieve", []),
                                                          ("rag.answer", [("rag.answer.predict", [])])])]
    assert otel_context.get_current() == otel_context.Context()  # every attach was detached
    errors = [r.getMessage() for r in caplog.records if r.name == "lmscope" and r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "app processor on_start bug" in errors[0]  # once, not once per span


@pytest.mark.parametrize("traced", [Raising(on_end=True)], indirect=True)
def test_an_on_end_that_raises_fails_no_call(traced, rag, make_lm, unique, expected_answer, rag_tree, tree,
                                             caplog) -> None:
    dspy.configure(lm=make_lm())
    for _ in range(2):
        result = rag(question=f"What is the capital of France? {unique}")
        assert str(result.answer) == expected_answer
    assert tree(traced.get_finished_spans()) == [rag_tree, rag_tree]
    assert otel_context.get_current() == otel_context.Context()
    errors = [r.getMessage() for r in caplog.records if r.name == "lmscope" and r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "app processor on_end bug" in errors[0]
