"""Span attributes stored in the export thread: what a span going only to lmscope's own exporters leaves for later.

Most of what lmscope costs the program's thread is attributes: the SDK validates and stores every value as it is
set (~0.5 µs each, 170 on one DSPy pipeline call), and captured content costs more to build (two JSON encodings, the
credential scrub of every text, the structured messages of both conventions). Nothing needs them before an exporter
reads the span, when lmscope's are the only eyes on it. So a span that goes only to lmscope's own processors
(lmscope's provider, before the app sets one, with no processor of anybody else's added to it, and a sampler of the
SDK's that reads no attributes) carries none of lmscope's attributes while it runs: the instrumentation hands them
to `set_on_export`, as finished values, or for content as a builder over a copy taken on the program's thread.
lmscope's processors call `with_attributes` when they read the span (the batch processors in their worker, the
console tree at its end), which builds and stores them once per span, through the same SDK validation and limits,
and hands every exporter the same copy of the span carrying them (what the SDK does that this relies on:
docs/opentelemetry-sdk.md).

Where anybody else's processor or sampler may see the span (the app's provider, a processor added to lmscope's),
attributes are set on the span in the call as usual: what they see never depends on this module.

What changes for the spans it handles, and only for them: a sampler or an `on_start` hook sees no lmscope attribute
(lmscope's own read none), and a `scrub_callback` runs in the export thread. Nothing unscrubbed ever leaves: a
builder that fails costs its attributes, reported once, never the span. Attributes waiting for a span live as long
as the finished span does (a weak reference): a span the queue drops takes them along.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio, StaticSampler, TraceIdRatioBased
from opentelemetry.trace import Span, Tracer

from ._exporters.span_rewrite import copied
from ._fork import renew_after_fork
from ._internal_errors import report_internal_error
from ._semconv import SCRUBBED

AttributesLater = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
"""A span's attributes as finished values, or a builder of them over a copy taken in the call (run on export)."""

_MAX_OPEN = 100_000
"""Open spans with attributes waiting that are remembered; past it (spans never ended) the oldest are forgotten."""


class _Waiting:
    """Attributes waiting: by span id while the span is open; then by the finished span the SDK hands the processors
    (a new object at `end()`), weakly, replaced by the copy every exporter gets once stored."""

    def __init__(self) -> None:
        self.open: dict[tuple[int, int], list[AttributesLater]] = {}
        self.ended: weakref.WeakKeyDictionary[ReadableSpan, list[AttributesLater] | ReadableSpan] = \
            weakref.WeakKeyDictionary()
        self.lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()


_WAITING = _Waiting()
_limits = SpanLimits()
"""The span limits of lmscope's own provider, which the attributes stored here obey as the SDK would have: read from
the OTEL_* variables when that provider is built (`use_limits`), not when lmscope is imported."""


def use_limits(limits: SpanLimits) -> None:
    """The limits lmscope's own provider was built with (`_tracer_provider.ProviderRegistry`)."""
    global _limits
    _limits = limits


class _SetOnSpan(dict[str, Any]):
    """The attributes set on the span itself (by lmscope's code or the app's) before the ones handed over after it:
    replayed in their place, so that values handed over later win over them, as they would in the call."""
_SAMPLERS_READING_NO_ATTRIBUTES = frozenset((StaticSampler, TraceIdRatioBased, ParentBased, ParentBasedTraceIdRatio))
"""The samplers OTEL_TRACES_SAMPLER builds from the SDK's own names (a custom one comes from an entry point)."""


def reads_no_attributes(sampler: object) -> bool:
    """True for the SDK's own samplers, which decide by trace id and parent alone (not a subclass: it may not)."""
    return type(sampler) in _SAMPLERS_READING_NO_ATTRIBUTES


def set_on_export(span: Span, *attributes: AttributesLater) -> None:
    """Have lmscope's exporters see `attributes` on `span` (a span `resolved` said may wait), which has
    not ended yet; later ones win over earlier ones, and what was set on the span itself wins over all (it was set
    after the start). Takes no lock: the program's thread never waits for an export worker (single dict operations
    are atomic; a span's attributes are handed over by the code running it, one at a time)."""
    context = span.get_span_context()
    key = (context.trace_id, context.span_id)
    own = getattr(span, "attributes", None)
    if own:  # rare: a value set on the span before this hand-over (an app's, lmscope's retriever kind)
        attributes = (_SetOnSpan(own), *attributes)
    waiting = _WAITING.open.get(key)
    if waiting is not None:
        waiting.extend(attributes)
        return
    if len(_WAITING.open) >= _MAX_OPEN:
        # Spans never ended: the oldest go. Another thread adding one mid-iteration raises: good enough.
        with _WAITING.lock, contextlib.suppress(RuntimeError):
            while len(_WAITING.open) >= _MAX_OPEN:
                _WAITING.open.pop(next(iter(_WAITING.open)), None)
    _WAITING.open[key] = list(attributes)


def span_ended(span: ReadableSpan) -> None:
    """Called by lmscope's processor on the provider (`SwitchableSpanProcessor.on_end`) before any other processor
    sees `span`: what waits for it now lives as long as `span` does."""
    if _WAITING.open:
        context = span.context
        waiting = _WAITING.open.pop((context.trace_id, context.span_id), None)
        if waiting is not None:
            _WAITING.ended[span] = waiting


def with_attributes(span: ReadableSpan) -> ReadableSpan:
    """`span` as lmscope's exporters export it: with the attributes handed over for it, stored the first time it is
    asked for, in the asking thread. Without any it is `span` itself: one dict lookup.

    The lock is held for dict operations only, never while building (a `scrub_callback` is the app's code): two
    exporters asking at once may both build, and the first copy stored is the one both export."""
    ended = _WAITING.ended
    if not ended:
        return span
    with _WAITING.lock:
        found = ended.get(span)
    if found is None or isinstance(found, ReadableSpan):
        return span if found is None else found
    stored = _copy_with(span, found)
    with _WAITING.lock:
        first = ended.get(span)
        if isinstance(first, ReadableSpan):
            return first
        ended[span] = stored
    return stored


def lock() -> Any:
    """The lock `with_attributes` takes (a flush in a signal handler checks it is free: `lmscope/_signals.py`)."""
    return _WAITING.lock


def _copy_with(span: ReadableSpan, waiting: list[AttributesLater]) -> ReadableSpan:
    """`span` with what waited for it, set in the order it was in the call: each later value wins, a key set again
    moves to the end (the SDK drops the least recently set key when the count limit is reached)."""
    merged: dict[str, Any] = {}
    scrubbed = False
    set_on_span: Mapping[str, Any] = {}

    def put(attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            merged.pop(key, None)
            merged[key] = value

    for later in waiting:
        if type(later) is _SetOnSpan:
            put(_changed(set_on_span, later))
            set_on_span = later
            continue
        try:
            attributes = later() if callable(later) else later
        except Exception as exc:  # noqa: BLE001 - the span goes out without these, never with content unscrubbed
            report_internal_error("span attributes built on export", exc)
            continue
        put(attributes)
        scrubbed = scrubbed or bool(attributes.get(SCRUBBED))
    own = span.attributes or {}
    put(_changed(set_on_span, own))  # set on the span after the last hand-over: last
    if scrubbed or own.get(SCRUBBED):  # only ever set true: content redacted anywhere marks the whole span
        merged[SCRUBBED] = True
    # Validated and limited as the SDK's span would have stored them (values of the wrong type dropped, cut).
    stored = BoundedAttributes(maxlen=_limits.max_span_attributes, attributes=merged, immutable=True,
                               max_value_len=_limits.max_span_attribute_length)
    return copied(span, attributes=stored)


def _changed(before: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of the span itself set (or set to another value) between two looks."""
    return {key: value for key, value in now.items() if key not in before or before[key] != value}


def copied_messages(value: Any) -> Any:
    """A copy of a prompt's structure (messages, their content parts and tool calls, the tools offered, a list of
    answers or of a retriever's documents) that later changes to the program's objects do not reach: mappings (DSPy's
    dotdicts too) and lists copied all the way down, a pydantic model (a LiteLLM `Message` sent back) deep-copied as
    itself, strings and numbers shared. A chat loop appends the answer to the very list it sent, a reranker edits
    the documents it got: the span must still show what was sent and returned."""
    return _copied(value, _MAX_COPY_DEPTH)


_MAX_COPY_DEPTH = 8
"""Deeper than any message or document; past it (a cycle, a huge structure) the rest is shared."""


def _copied(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str or depth == 0:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {key: item if type(item) is str else _copied(item, depth - 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [item if type(item) is str else _copied(item, depth - 1) for item in value]
    pydantic = sys.modules.get("pydantic")  # loaded already wherever a model can be met
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        try:
            return value.model_copy(deep=True)
        except Exception:  # noqa: BLE001 - a model that will not copy is shared, as any other object
            return value
    return value


def resolved(tracer: Tracer) -> tuple[Tracer, bool]:
    """(the tracer `tracer`'s next span goes through, whether only lmscope's own processors see it, which store its
    attributes on export): lmscope's `FollowingTracer` knows; any other tracer's spans get theirs in the call."""
    resolve: Callable[[], tuple[Tracer, bool]] | None = getattr(tracer, "resolve", None)
    return (tracer, False) if resolve is None else resolve()
