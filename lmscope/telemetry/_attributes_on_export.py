"""Span attributes stored in the export thread: what a span going only to lmscope's own exporters leaves for later.

Most of what lmscope costs the program's thread is attributes: the SDK validates and stores every value as it is
set (~0.5 µs each, 170 on one DSPy pipeline call), and captured content costs more to build (two JSON encodings, the
credential scrub of every text, the structured messages of both conventions). Nothing needs them before an exporter
reads the span, when lmscope's are the only eyes on it. So a span that goes only to lmscope's own processors
(lmscope's provider, before the app sets one, with no processor of anybody else's added to it, and a sampler of the
SDK's that reads no attributes) is recorded by lmscope's `RecordingTracer` (`_recorded_span.py`), not made by the
SDK, and carries none of lmscope's attributes while it runs: the instrumentation hands them to `set_on_export`, as
finished values, or for content as a builder over a copy taken on the program's thread. lmscope's processors call
`with_attributes` when they read the span (the batch processors in their worker, the console tree at its end), which
builds the SDK's finished span once, storing the attributes through the SDK's own validation and limits, and hands
every exporter that one span (what the SDK does that this relies on: docs/opentelemetry-sdk.md).

Where anybody else's processor or sampler may see the span (the app's provider, a processor added to lmscope's),
attributes are set on the span in the call as usual: what they see never depends on this module.

What changes for the spans it handles, and only for them: a sampler or an `on_start` hook sees no lmscope attribute
(lmscope's own read none), and a `scrub_callback` runs in the export thread. Nothing unscrubbed ever leaves: a
builder that fails costs its attributes, reported once, never the span. Attributes waiting for a span live in it:
a span the queue drops takes them along.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio, StaticSampler, TraceIdRatioBased
from opentelemetry.trace import Span, Tracer

from ._internal_errors import report_internal_error
from ._recorded_span import AttributesLater, Later, RecordedSpan

__all__ = ["AttributesLater", "Later", "copied_messages", "reads_no_attributes", "resolver", "set_on_export",
           "with_attributes"]


def reads_no_attributes(sampler: object) -> bool:
    """True for the SDK's own samplers, which decide by trace id and parent alone (not a subclass: it may not)."""
    return type(sampler) in _SAMPLERS_READING_NO_ATTRIBUTES


_SAMPLERS_READING_NO_ATTRIBUTES = frozenset((StaticSampler, TraceIdRatioBased, ParentBased, ParentBasedTraceIdRatio))
"""The samplers OTEL_TRACES_SAMPLER builds from the SDK's own names (a custom one comes from an entry point)."""


def set_on_export(span: Span, *attributes: AttributesLater) -> None:
    """Have lmscope's exporters see `attributes` on `span` (a span of the tracer `resolved` handed out), which has
    not ended yet: later ones win over earlier ones, and a value set on the span itself in between wins over those
    before it. A span `RecordingTracer` recorded keeps them for its export; any other span gets them now."""
    if type(span) is RecordedSpan:
        span.hand_over(attributes)
        return
    if not span.is_recording():
        return
    for later in attributes:
        try:
            span.set_attributes(later() if callable(later) else later)
        except Exception as exc:  # noqa: BLE001 - a builder's fault costs its attributes, not the span
            report_internal_error("span attributes", exc)


def with_attributes(span: ReadableSpan | RecordedSpan) -> ReadableSpan:
    """`span` as lmscope's exporters export it: a recorded span built into the SDK's finished span (once, in the
    asking thread), any other span as it is."""
    return span.readable() if type(span) is RecordedSpan else span  # type: ignore[return-value]  # narrowed


def copied_messages(value: Any) -> Any:
    """A copy of a prompt's structure (messages, their content parts and tool calls, the tools offered, a list of
    answers or of a retriever's documents) that later changes to the program's objects do not reach: mappings (DSPy's
    dotdicts too) and lists copied all the way down, a pydantic model (a LiteLLM `Message` sent back) deep-copied as
    itself, strings and numbers shared. A chat loop appends the answer to the very list it sent, a reranker edits
    the documents it got: the span must still show what was sent and returned."""
    return _copied(value, _MAX_COPY_DEPTH)


_MAX_COPY_DEPTH = 8
"""Deeper than any message or document; past it (a cycle, a huge structure) the rest is shared."""


_SHARED = frozenset((str, int, float, bool, bytes, type(None)))
"""Values that cannot change: shared, not copied (and not run through the slower checks below)."""


def _copied(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _SHARED or depth == 0:
        return value
    if kind is dict or isinstance(value, Mapping):
        if kind is dict and _SHARED.issuperset(map(type, value.values())):  # a message: one copy in C
            return value.copy()
        return {key: item if type(item) in _SHARED else _copied(item, depth - 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        if _SHARED.issuperset(map(type, value)):  # answers, passages: one copy in C
            return list(value)
        return [item if type(item) in _SHARED else _copied(item, depth - 1) for item in value]
    pydantic = sys.modules.get("pydantic")  # loaded already wherever a model can be met
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        try:
            return value.model_copy(deep=True)
        except Exception:  # noqa: BLE001 - a model that will not copy is shared, as any other object
            return value
    return value


def resolver(tracer: Tracer) -> Callable[[], tuple[Tracer, bool]]:
    """What tells, before each span, (the tracer `tracer`'s next span goes through, whether only lmscope's own
    processors see it, which store its attributes on export): lmscope's `FollowingTracer` knows (its `resolve`, looked
    up once here); any other tracer's spans get theirs in the call."""
    resolve: Callable[[], tuple[Tracer, bool]] | None = getattr(tracer, "resolve", None)
    if resolve is not None:
        return resolve
    fixed = (tracer, False)
    return lambda: fixed
