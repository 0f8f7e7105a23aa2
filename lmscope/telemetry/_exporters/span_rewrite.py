"""Span exporters that add backend-specific attributes, or resource attributes, to copies of the spans they forward.

Every exporter sees the same finished spans; a backend preset that needs extra keys (Langfuse's observation
types, MLflow's span type, Phoenix's project on the resource) adds them to its own copies here, in the export
thread, so the file, console and other backends keep the plain span contract and the app's threads pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList

from .._internal_errors import report_internal_error

ExtraAttributes = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""A span's attributes -> the keys to add, or to remove with the value None (an attribute is never None); an empty
mapping leaves the span as it is."""


def copied(span: ReadableSpan, *, attributes: Mapping[str, Any] | None = None,
           resource: Resource | None = None) -> ReadableSpan:
    """A copy of `span` with `attributes` and `resource` in place of its own (None: its own), saying what the
    original dropped: its dropped events and links, and its dropped attributes added to what a `BoundedAttributes`
    given as `attributes` dropped (the SDK's span reads these counts off its `BoundedList`s and `BoundedAttributes`)."""
    if attributes is None:
        attributes = span.attributes or {}
    elif span.dropped_attributes:  # rare: the original hit the attribute limit
        if not isinstance(attributes, BoundedAttributes):
            attributes = BoundedAttributes(maxlen=None, attributes=attributes, immutable=True)
        attributes.dropped += span.dropped_attributes
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent,
        resource=span.resource if resource is None else resource, attributes=attributes,
        events=_with_dropped(span.events, span.dropped_events), links=_with_dropped(span.links, span.dropped_links),
        kind=span.kind, status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)


def _with_dropped(items: Sequence[Any], dropped: int) -> Sequence[Any]:
    """`items`, in a `BoundedList` that counts `dropped` when the original dropped some."""
    if not dropped:
        return items
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


def with_attributes(span: ReadableSpan, extra: Mapping[str, Any]) -> ReadableSpan:
    """A copy of `span` whose attributes also hold `extra` (keys mapped to None are left out)."""
    attributes = {key: value for key, value in {**(span.attributes or {}), **extra}.items() if value is not None}
    return copied(span, attributes=attributes)


class ForwardingExporter(SpanExporter):
    """Base of the exporters below: flush, shutdown and the endpoint lmscope's export warnings name are `inner`'s."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    @property
    def endpoint(self) -> str | None:
        """Where the wrapped exporter sends: what lmscope's export warnings name."""
        return getattr(self._inner, "endpoint", None) or getattr(self._inner, "_endpoint", None)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()


class AttributeAddingExporter(ForwardingExporter):
    """Forwards spans to `inner` with `extra(attributes)` added to each."""

    def __init__(self, inner: SpanExporter, extra: ExtraAttributes) -> None:
        super().__init__(inner)
        self._extra = extra

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        copies = []
        for span in spans:
            try:
                added = self._extra(span.attributes or {})
            except Exception as exc:  # noqa: BLE001 - one odd span (the app's own, say) must not cost its batch
                report_internal_error("backend attributes", exc)
                added = {}
            copies.append(with_attributes(span, added) if added else span)
        return self._inner.export(copies)


class ResourceAddingExporter(ForwardingExporter):
    """Forwards spans to `inner` with `attributes` merged into their resource (these values win)."""

    def __init__(self, inner: SpanExporter, attributes: Mapping[str, str]) -> None:
        super().__init__(inner)
        self._extra = Resource(dict(attributes))
        # One merged resource per resource seen (a provider has one; the app's spans may bring another), not per span:
        # the OTLP encoder groups spans by resource, so equal resources keep one ResourceSpans per request.
        self._merged: dict[Resource, Resource] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([copied(span, resource=self._resource(span.resource)) for span in spans])

    def _resource(self, own: Resource) -> Resource:
        merged = self._merged.get(own)
        if merged is None:
            merged = self._merged[own] = own.merge(self._extra)
        return merged
