"""A backend preset's extra attributes are worked out span by span: one span they fail on goes as it is, and
never costs the rest of its batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.telemetry._exporters.span_rewrite import AttributeAddingExporter


def _extra(attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    if attributes.get("odd"):
        raise ValueError("cannot map this span")
    return {"backend.type": "chain", "drop.me": None}


def test_a_span_the_extra_attributes_fail_on_is_exported_unchanged(swallow_internal_errors: None) -> None:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(AttributeAddingExporter(inner, _extra)))
    tracer = provider.get_tracer("test")
    tracer.start_span("odd", attributes={"odd": True, "drop.me": 1}).end()
    tracer.start_span("plain", attributes={"drop.me": 1, "kept": 2}).end()
    exported = {span.name: dict(span.attributes or {}) for span in inner.get_finished_spans()}
    assert exported == {"odd": {"odd": True, "drop.me": 1}, "plain": {"kept": 2, "backend.type": "chain"}}
