"""`span_starter` starts the same spans as `Tracer.start_span` (as `LightSpan`s), or is `Tracer.start_span`.

Each case runs the same steps twice, on two providers built alike with deterministic ids: once starting
spans through `span_starter(tracer)`, once through `tracer.start_span`. Processors must see the same spans
in `on_start` and `on_end` (an SDK span either way: `LightSpan` is one), and the exporter must get the same spans.
tests/telemetry/test_light_span.py compares what the two kinds of span do once started.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState, get_current_span,
                                 set_span_in_context)

from lmscope.telemetry._light_span import LightSpan
from lmscope.telemetry._span_start import span_starter


def kind_of(span: Any) -> Any:
    """An SDK span of either class reads as one kind; anything else by its type."""
    return "SDK span" if isinstance(span, Span) else type(span)


class CountingIds(IdGenerator):
    def __init__(self, random: bool) -> None:
        self.next, self.random = 0, random

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return 2**100 + self.next

    def is_trace_id_random(self) -> bool:
        return self.random


class Seen(SpanProcessor):
    """What a processor of the app would see: the span and parent context at start, the span at end."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = None if parent_context is None else get_current_span(parent_context).get_span_context()
        self.events.append(("start", kind_of(span), span.name, span.context, span.parent, span.kind,
                            dict(span.attributes), parent))

    def on_end(self, span: ReadableSpan) -> None:
        self.events.append(("end", span.name, span.context, span.parent, span.kind, dict(span.attributes),
                            span.status.status_code, span.resource, span.instrumentation_scope))


def run(steps: Callable[[Callable[..., Any]], list[Any]], *, fast: bool, sampler: sampling.Sampler | None = None,
        random_ids: bool | None = True) -> tuple[list[Any], list[Any], bool]:
    """(spans returned, processor events, whether the fast path was used) for `steps(start_span)`."""
    # random_ids=None: the SDK's default RandomIdGenerator, on a seeded `random` (both runs draw the same ids)
    provider = TracerProvider(sampler=sampler, id_generator=None if random_ids is None else CountingIds(random_ids))
    random.seed(7)
    seen = Seen()
    provider.add_span_processor(seen)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = provider.get_tracer("test", "1.0")
    starter = span_starter(tracer)
    started = steps(starter if fast else tracer.start_span)
    returned = [(kind_of(span), span.get_span_context(), span.is_recording()) for span in started]
    if fast and starter != tracer.start_span:
        assert all(type(span) in (LightSpan, NonRecordingSpan) for span in started)
    return returned, seen.events, starter != tracer.start_span


def both(steps: Callable[[Callable[..., Any]], list[Any]], **options: Any) -> bool:
    """Runs `steps` both ways, asserts they match, and says whether the fast path was the one taken."""
    ours, sdk = run(steps, fast=True, **options), run(steps, fast=False, **options)
    assert ours[:2] == sdk[:2]
    return ours[2]


FELL_BACK = ("span_starter used tracer.start_span: the installed SDK's start_span/sampler code differs from the "
             "code telemetry/_span_start.py follows; check `start` against it and add its fingerprint")


def tree(start_span: Callable[..., Any]) -> list[Any]:
    """A root, a child made current by attach, a CLIENT grandchild given its context explicitly."""
    root = start_span("root")
    token = otel_context.attach(set_span_in_context(root))
    try:
        child = start_span("child", otel_context.get_current())
        grandchild = start_span("chat model", set_span_in_context(child), SpanKind.CLIENT)
    finally:
        otel_context.detach(token)
    for span in (grandchild, child, root):
        span.end()
    return [root, child, grandchild]


def under_remote_parent(sampled: bool) -> Callable[[Callable[..., Any]], list[Any]]:
    parent = SpanContext(2**90, 77, is_remote=True, trace_state=TraceState([("vendor", "x")]),
                         trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT))

    def steps(start_span: Callable[..., Any]) -> list[Any]:
        span = start_span("from remote", set_span_in_context(NonRecordingSpan(parent)))
        span.end()
        return [span]

    return steps


@pytest.mark.parametrize("random_ids", [True, False, None])
def test_a_sampled_tree_is_the_same(random_ids):
    assert both(tree, random_ids=random_ids), FELL_BACK


@pytest.mark.parametrize("sampled", [True, False])
def test_remote_parents_decide_and_pass_their_trace_state(sampled):
    assert both(under_remote_parent(sampled)), FELL_BACK


def test_children_of_an_unsampled_parent_are_dropped_alike():
    def steps(start_span: Callable[..., Any]) -> list[Any]:
        parent = start_span("unsampled root")
        child = start_span("child", set_span_in_context(parent))
        return [parent, child]

    # An ALWAYS_OFF root makes the root unsampled; the fast path then only sees it through the parent flag.
    assert not both(steps, sampler=sampling.ParentBased(sampling.ALWAYS_OFF))
    dropped = NonRecordingSpan(SpanContext(2**90, 5, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT)))
    assert both(lambda start_span: [start_span("child", set_span_in_context(dropped))]), FELL_BACK


@pytest.mark.parametrize("sampler", [sampling.ALWAYS_ON, sampling.TraceIdRatioBased(0.5),
                                     sampling.ParentBased(sampling.ALWAYS_ON, local_parent_not_sampled=sampling.ALWAYS_ON)])
def test_any_other_sampler_gets_the_tracer_itself(sampler):
    assert not both(tree, sampler=sampler)


def test_a_tracer_switched_off_by_its_configurator_gets_non_recording_spans_alike():
    from opentelemetry.sdk.trace import _disable_tracer_configurator

    def run_disabled(fast: bool) -> list[Any]:
        provider = TracerProvider(id_generator=CountingIds(True), _tracer_configurator=_disable_tracer_configurator)
        tracer = provider.get_tracer("test")
        start = span_starter(tracer) if fast else tracer.start_span
        span = start("root")
        return [type(span), span.get_span_context(), span.is_recording()]

    assert run_disabled(fast=True) == run_disabled(fast=False) == [NonRecordingSpan, run_disabled(False)[1], False]
