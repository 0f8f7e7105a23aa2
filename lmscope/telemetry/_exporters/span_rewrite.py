"""A span exporter that adds backend-specific attributes to copies of the spans it forwards.

Every exporter sees the same finished spans; a backend preset that needs extra keys (Langfuse's observation
types, MLflow's span type) adds them to its own copies here, in the export thread, so the file, console and
other backends keep the plain span contract and the app's threads pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._internal_errors import report_internal_error

ExtraAttributes = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""A span's attributes -> the keys to add, or to remove with the value None (an attribute is never None); an empty
mapping leaves the span as it is."""


def with_attributes(span: ReadableSpan, extra: Mapping[str, Any]) -> ReadableSpan:
    """A copy of `span` whose attributes also hold `extra` (keys mapped to None are left out)."""
    attributes = {key: value for key, value in {**(span.attributes or {}), **extra}.items() if value is not None}
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attributes, events=span.events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)


class AttributeAddingExporter(SpanExporter):
    """Forwards spans to `inner` with `extra(attributes)` added to each."""

    def __init__(self, inner: SpanExporter, extra: ExtraAttributes) -> None:
        self._inner = inner
        self._extra = extra

    @property
    def endpoint(self) -> str | None:
        """Where the wrapped exporter sends: what lmscope's export warnings name."""
        return getattr(self._inner, "endpoint", None) or getattr(self._inner, "_endpoint", None)

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

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()
