"""Samplers decide what records; lmscope's attributes follow the decision, never a guess.

lmscope builds a span's start attributes before `start_span` when the span will most likely record (a root, or
the child of a recording module span), so samplers and `on_start` see them, and otherwise only if the sampler
records it after all. These tests run the 3-step program under samplers that make the guess wrong, or drop
everything, and compare with an unsampled-nothing run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dspy
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track

_VARYING = {semconv.GEN_AI_RESPONSE_ID}


class DropTheRoot(Sampler):
    """Records every span but the program's root: its children are recorded under a span that is not."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: Any = None) -> SamplingResult:
        decision = Decision.DROP if name == "rag" else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes if decision is Decision.RECORD_AND_SAMPLE else None)

    def get_description(self) -> str:
        return "DropTheRoot"


def traced_run(sampler: Sampler, program: Any, question: str, server: Any) -> tuple[list[ReadableSpan], Any]:
    server.reset_prefix_cache()  # every run sees the same cached prompt tokens
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        with track() as usage:  # what `lmscope.track()` opens
            answer = program(question=question).answer
    finally:
        instrumentor.uninstrument()
    return list(exporter.get_finished_spans()), (answer, usage.total())


def shapes(spans: list[ReadableSpan]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """(name, attributes in order) of each span, in the order they ended."""
    return [(span.name, [(key, value) for key, value in (span.attributes or {}).items() if key not in _VARYING])
            for span in spans]


def test_children_of_an_unsampled_root_get_their_full_attributes(make_lm: Any, rag: Any, unique: str,
                                                                 lm_server: Any) -> None:
    dspy.configure(lm=make_lm(cache=False))
    question = f"What is the capital of France? {unique}"
    everything, result = traced_run(ALWAYS_ON, rag, question, lm_server)
    children, same_result = traced_run(DropTheRoot(), rag, question, lm_server)
    assert same_result == result
    assert "rag" not in {span.name for span in children}
    expected = shapes([span for span in everything if span.name != "rag"])
    got = shapes(children)
    assert got == expected  # names, attributes, values and their order
    # rewrite, its LM call, retrieve, answer.predict's LM call, answer.predict, answer: all with attributes
    assert len(got) == 6 and all(attributes for _name, attributes in got)


def test_nothing_recorded_still_counts_usage_and_changes_nothing(make_lm: Any, rag: Any, unique: str,
                                                                 lm_server: Any) -> None:
    dspy.configure(lm=make_lm(cache=False))
    question = f"What is the capital of France? {unique}"
    _, result = traced_run(ALWAYS_ON, rag, question, lm_server)
    spans, unsampled_result = traced_run(ALWAYS_OFF, rag, question, lm_server)
    assert spans == []
    assert unsampled_result == result and result[1]["input_tokens"] > 0  # both LM calls counted, as when recorded


def test_top_level_attributes_are_not_built_for_a_span_the_sdks_fixed_samplers_drop() -> None:
    """`_may_sample`: only the SDK's own fixed samplers, which read no attribute, are trusted to drop a span
    before it starts; any other sampler gets the attributes (it may decide by them)."""
    from opentelemetry.sdk.trace.sampling import DEFAULT_OFF, DEFAULT_ON, ParentBased
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from lmscope.instrumentation.dspy._runtime import _may_sample
    from lmscope.telemetry._following_tracer import FollowingTracer

    def parent(sampled: bool) -> Context:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        return set_span_in_context(NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=flags)))

    def tracer(sampler: Sampler) -> Any:
        return TracerProvider(sampler=sampler).get_tracer("test")

    assert not _may_sample(tracer(ALWAYS_OFF), Context())
    assert not _may_sample(tracer(ALWAYS_OFF), parent(sampled=True))
    assert _may_sample(tracer(DEFAULT_ON), Context()) and _may_sample(tracer(DEFAULT_ON), parent(sampled=True))
    assert not _may_sample(tracer(DEFAULT_ON), parent(sampled=False))
    assert not _may_sample(tracer(DEFAULT_OFF), Context()) and not _may_sample(tracer(DEFAULT_OFF), parent(False))
    assert _may_sample(tracer(DEFAULT_OFF), parent(sampled=True))
    for other in (ALWAYS_ON, DropTheRoot(), ParentBased(ALWAYS_OFF)):  # not the SDK's own object: may read them
        assert _may_sample(tracer(other), Context()) and _may_sample(tracer(other), parent(sampled=False))
    assert _may_sample(object(), Context())  # a tracer without a sampler
    following = FollowingTracer("test", None, tracer(ALWAYS_OFF), lambda _name, _version: None)
    assert not _may_sample(following, Context())


def test_no_start_attributes_are_built_under_always_off(monkeypatch: Any, make_lm: Any, rag: Any, unique: str,
                                                        lm_server: Any) -> None:
    from lmscope.instrumentation.dspy import _runtime

    built: list[str] = []
    original = _runtime._built
    monkeypatch.setattr(_runtime, "_built", lambda *args: built.append(args[1]) or original(*args))
    dspy.configure(lm=make_lm(cache=False))
    spans, _result = traced_run(ALWAYS_OFF, rag, f"What is the capital of France? {unique}", lm_server)
    assert spans == [] and built == []
