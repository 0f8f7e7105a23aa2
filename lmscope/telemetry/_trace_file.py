"""Finished spans as plain records, from an OTLP/JSON lines file or straight from the SDK.

`lmscope tree`, `lmscope report` and the console tree all work on `SpanRecord`s, so the text they print
is the same whether the spans come from a file written earlier or from the running process.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from . import _semconv as semconv

# The figures the tree and the report add up. A file may hold other producers' spans: a value of the wrong
# type under one of these keys (a cost sent as a string, say) is read as absent rather than crash a sum.
_NUMBERS: frozenset[str] = frozenset({
    semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_COST, semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHED_TOKENS,
    semconv.COST_TOTAL_USD, semconv.LM_CALLS, semconv.CACHE_HITS, semconv.CACHE_SAVED_USD,
    semconv.CACHE_SAVED_TOTAL_USD, semconv.BATCH_INDEX,
})

# OTLP enum values by number; the SDK's own enums are read by name.
_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits."""
    parent_span_id: str | None
    """None for a root span."""
    name: str
    kind: str
    """INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER (or UNSPECIFIED)."""
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    """Plain Python values; arrays are tuples, as the SDK stores them."""
    status_code: str = "UNSET"
    """UNSET, OK or ERROR."""
    status_message: str = ""
    events: tuple[EventRecord, ...] = ()
    resource: dict[str, Any] = field(default_factory=dict)
    """The resource's attributes (service.name, ...)."""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


class TraceFileError(ValueError):
    """A line of a trace file is not an OTLP/JSON ExportTraceServiceRequest."""


# --- from the SDK ---------------------------------------------------------------------------------


def records_from_spans(spans: Iterable[ReadableSpan]) -> list[SpanRecord]:
    return [_record_from_span(span) for span in spans]


def _record_from_span(span: ReadableSpan) -> SpanRecord:
    context = span.context
    parent = span.parent
    return SpanRecord(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        attributes=_numbers_checked(dict(span.attributes or {})),
        status_code=span.status.status_code.name,
        status_message=span.status.description or "",
        events=tuple(
            EventRecord(event.name, event.timestamp, dict(event.attributes or {})) for event in span.events
        ),
        resource=dict(span.resource.attributes),
    )


# --- from a file ----------------------------------------------------------------------------------


def read_trace_file(path: str | os.PathLike[str]) -> list[SpanRecord]:
    """Every span in an OTLP/JSON lines file (ours, or the Collector's `file` exporter's)."""
    records: list[SpanRecord] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                records.extend(records_from_request(json.loads(line)))
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise TraceFileError(f"{os.fspath(path)}:{number}: not an OTLP/JSON trace request: {exc}") from exc
    return records


def records_from_request(request: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """The spans of one decoded OTLP/JSON `ExportTraceServiceRequest`."""
    for resource_spans in request["resourceSpans"]:
        resource = _attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                yield _record_from_json(span, resource)


def _record_from_json(span: Mapping[str, Any], resource: dict[str, Any]) -> SpanRecord:
    status = span.get("status") or {}
    return SpanRecord(
        trace_id=_hex_id(span["traceId"], 32),
        span_id=_hex_id(span["spanId"], 16),
        parent_span_id=_hex_id(span["parentSpanId"], 16) if span.get("parentSpanId") else None,
        name=span.get("name", ""),
        kind=_enum(span.get("kind", 0), _KINDS, "SPAN_KIND_"),
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        attributes=_numbers_checked(_attributes(span.get("attributes"))),
        status_code=_enum(status.get("code", 0), _STATUS_CODES, "STATUS_CODE_"),
        status_message=status.get("message", ""),
        events=tuple(
            EventRecord(event.get("name", ""), int(event.get("timeUnixNano", 0)), _attributes(event.get("attributes")))
            for event in span.get("events", ())
        ),
        resource=resource,
    )


def _hex_id(value: str, digits: int) -> str:
    value = value.lower()
    if len(value) != digits:
        raise ValueError(f"id {value!r} is not {digits} hex digits")
    int(value, 16)  # rejects non-hex
    return value


def _enum(value: int | str, names: tuple[str, ...], prefix: str) -> str:
    # The protobuf JSON mapping allows either the number or the full enum name.
    if isinstance(value, str):
        return value.removeprefix(prefix)
    return names[value]


def _numbers_checked(attributes: dict[str, Any]) -> dict[str, Any]:
    wrong = [key for key in _NUMBERS.intersection(attributes)
             if isinstance(attributes[key], bool) or not isinstance(attributes[key], (int, float))]
    for key in wrong:
        del attributes[key]
    return attributes


def _attributes(encoded: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value") or {}) for item in encoded or ()}


def _value(encoded: Mapping[str, Any]) -> Any:
    if "stringValue" in encoded:
        return encoded["stringValue"]
    if "intValue" in encoded:
        return int(encoded["intValue"])
    if "doubleValue" in encoded:
        return float(encoded["doubleValue"])  # also parses "NaN" / "Infinity"
    if "boolValue" in encoded:
        return bool(encoded["boolValue"])
    if "arrayValue" in encoded:
        return tuple(_value(item) for item in encoded["arrayValue"].get("values", ()))
    if "kvlistValue" in encoded:
        return _attributes(encoded["kvlistValue"].get("values"))
    if "bytesValue" in encoded:
        return base64.b64decode(encoded["bytesValue"])
    return None
