"""OTLP/JSON: finished spans as one `ExportTraceServiceRequest` per line, readable with no backend.

The encoding is the standard OTLP/JSON one (hex ids, enums as integers, 64-bit integers as decimal
strings, lowerCamelCase keys), so the OpenTelemetry Collector's `otlpjsonfile` receiver can replay a
file and `lmscope tree` / `lmscope report` read it back. Dicts are built directly rather than through
protobuf: the encoder runs in the BatchSpanProcessor thread and shares the GIL with the app.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from .._fork import renew_after_fork
from .._scrub import scrub_error_text

logger = logging.getLogger("lmscope")

# OTLP's SpanFlags: bits 0-7 carry the W3C trace flags; bit 8 says whether bit 9 (parent is remote) is known.
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200

JsonDict = dict[str, Any]


def encode_spans(spans: Sequence[ReadableSpan]) -> JsonDict:
    """One OTLP/JSON `ExportTraceServiceRequest`, spans grouped by resource, then instrumentation scope."""
    # Keyed by id(): Resource.__hash__ serialises every attribute to JSON, far too slow per span, and all
    # spans of one provider share the same Resource object anyway.
    by_resource: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[JsonDict]]]] = {}
    for span in spans:
        resource = span.resource
        entry = by_resource.get(id(resource))
        if entry is None:
            entry = by_resource[id(resource)] = (resource, {})
        entry[1].setdefault(span.instrumentation_scope, []).append(_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [
                    _scope_spans(scope, encoded) for scope, encoded in by_scope.items()
                ],
                "schemaUrl": resource.schema_url,
            }
            for resource, by_scope in by_resource.values()
        ]
    }


def _scope_spans(scope: InstrumentationScope | None, spans: list[JsonDict]) -> JsonDict:
    if scope is None:
        return {"scope": {}, "spans": spans}
    encoded: JsonDict = {"name": scope.name}
    if scope.version:
        encoded["version"] = scope.version
    if scope.attributes:
        encoded["attributes"] = _attributes(scope.attributes)
    return {"scope": encoded, "spans": spans, "schemaUrl": scope.schema_url or ""}


def _span(span: ReadableSpan) -> JsonDict:
    context = span.context
    parent = span.parent
    encoded: JsonDict = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "name": span.name,
        # The SDK's SpanKind starts at INTERNAL=0; OTLP reserves 0 for UNSPECIFIED.
        "kind": span.kind.value + 1,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "flags": _flags(context, parent),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if parent is not None:
        encoded["parentSpanId"] = format(parent.span_id, "016x")
    if span.attributes:
        encoded["attributes"] = _attributes(span.attributes)
    if span.dropped_attributes:
        encoded["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        encoded["events"] = [_event(event) for event in span.events]
    if span.dropped_events:
        encoded["droppedEventsCount"] = span.dropped_events
    if span.links:
        encoded["links"] = [_link(link) for link in span.links]
    if span.dropped_links:
        encoded["droppedLinksCount"] = span.dropped_links
    status = span.status
    # OTLP's StatusCode values (UNSET=0, OK=1, ERROR=2) equal the SDK's.
    encoded["status"] = (
        {"code": status.status_code.value, "message": status.description}
        if status.description
        else {"code": status.status_code.value}
    )
    return encoded


def _flags(context: SpanContext, parent: SpanContext | None) -> int:
    flags = int(context.trace_flags) | _FLAGS_HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _FLAGS_IS_REMOTE
    return flags


def _event(event: Any) -> JsonDict:
    encoded: JsonDict = {"timeUnixNano": str(event.timestamp), "name": event.name}
    if event.attributes:
        encoded["attributes"] = _attributes(event.attributes)
    dropped = getattr(event, "dropped_attributes", 0)
    if dropped:
        encoded["droppedAttributesCount"] = dropped
    return encoded


def _link(link: Any) -> JsonDict:
    context: SpanContext = link.context
    encoded: JsonDict = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "flags": _flags(context, context),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if link.attributes:
        encoded["attributes"] = _attributes(link.attributes)
    if link.dropped_attributes:
        encoded["droppedAttributesCount"] = link.dropped_attributes
    return encoded


def _attributes(attributes: Mapping[str, Any]) -> list[JsonDict]:
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _value(value: Any) -> JsonDict:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        # JSON has no NaN/Infinity literals; the protobuf JSON mapping spells them as strings.
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


class OtlpJsonFileExporter(SpanExporter):
    """Appends one OTLP/JSON line per `export()` call; thread-safe; never raises into the caller.

    A line is written whole or not at all, so a reader never meets two requests run together: it is built in
    full, then handed to the kernel with `os.write` on a descriptor opened with O_APPEND (no userspace buffer,
    so a forked child neither inherits half a line nor writes the parent's again, and the lines of several
    processes appending to one file do not interleave). When a write stops part-way (a full disk), the partial
    line is cut off again (`_take_back`); if another process appended behind it meanwhile, the next line starts
    with a newline instead, so the torn one stays a single unreadable line and every later span is readable.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._torn = False
        """A partial line could not be taken back: the next write ends it first."""
        self._closed = False
        self._warned = False
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's export worker may have held it; the descriptor is shared

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            # Encoded outside the lock: only the write needs to be serialised. Lone surrogates (not UTF-8) are
            # replaced, so the line stays valid JSON in valid UTF-8.
            line = (json.dumps(encode_spans(spans), separators=(",", ":"), ensure_ascii=False) + "\n").encode(
                "utf-8", "replace")
            with self._lock:
                if self._closed:
                    return SpanExportResult.FAILURE
                self._write_line(self._open(), line)
        except Exception as exc:  # noqa: BLE001 - an exporter must never raise into the SDK thread
            self._warn(exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _open(self) -> int:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self._path, flags, 0o666)
        return self._fd

    def _write_line(self, fd: int, line: bytes) -> None:
        data = memoryview(b"\n" + line if self._torn else line)
        written = 0
        try:
            while written < len(data):
                count = _write(fd, data[written:])
                if count <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
        except OSError:
            if written:
                self._take_back(fd, written)
            raise
        self._torn = False

    def _take_back(self, fd: int, written: int) -> None:
        """Cut off the `written` bytes of a line that could not be finished; else mark the line torn."""
        try:
            end = os.lseek(fd, 0, os.SEEK_CUR)  # with O_APPEND: just past what this write appended
            if os.fstat(fd).st_size == end:  # nobody appended behind it
                os.ftruncate(fd, end - written)
                return
        except OSError:
            pass
        self._torn = True

    def _warn(self, exc: BaseException) -> None:
        # One warning per exporter: a full disk would otherwise log once per batch.
        if not self._warned:
            self._warned = True
            logger.warning("lmscope: cannot write spans to %s (%s); spans are being dropped", self._path,
                           scrub_error_text(repr(exc)))
        with self._lock:
            self._close_file()  # reopen on the next export: the problem may be transient

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export already handed its line to the kernel

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._close_file()


_write = os.write
"""The one call that writes a line (tests replace it to simulate a disk that fills up part-way)."""
