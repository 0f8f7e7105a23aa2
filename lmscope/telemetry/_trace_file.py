"""Finished spans as plain records, from an OTLP/JSON lines file or straight from the SDK.

`lmscope tree`, `lmscope report` and the console tree all work on `SpanRecord`s, so the text they print
is the same whether the spans come from a file written earlier or from the running process.

A file is read one line at a time and its records yielded as they come (`iter_trace_file`), so a reader that
does not keep them all (the report) needs memory for one line, not for the file. Nothing in a file stops the
reading: malformed spans and unreadable lines are skipped and described in `ReadProblems`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from ._read_problems import ReadProblems
from ._trace_decode import decode_line, decode_request
from ._trace_records import EventRecord, SpanRecord, numbers_checked

__all__ = ["EventRecord", "ReadProblems", "SpanRecord", "iter_trace_file", "read_trace_file", "records_from_request",
           "records_from_spans"]

_BOM = b"\xef\xbb\xbf"  # written by some Windows tools before the first line; not part of the JSON

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
        attributes=numbers_checked(dict(span.attributes or {})),
        status_code=span.status.status_code.name,
        status_message=span.status.description or "",
        events=tuple(
            EventRecord(event.name, event.timestamp, dict(event.attributes or {})) for event in span.events
        ),
        resource=dict(span.resource.attributes),
        remote_parent=parent is not None and parent.is_remote,
    )


# --- from a file ----------------------------------------------------------------------------------


def iter_trace_file(path: str | os.PathLike[str], problems: ReadProblems) -> Iterator[SpanRecord]:
    """Every readable span of an OTLP/JSON lines file (ours, or the Collector's `file` exporter's), in file
    order. Raises OSError only when the file cannot be opened or read; everything else goes to `problems`."""
    with open(path, "rb") as file:  # bytes: a line that is not UTF-8 must not stop the lines after it
        for number, raw in enumerate(file, start=1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            try:
                text, lossy = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                # Another producer's Latin-1 span name, say: keep the rest of the line. A torn line fails as JSON.
                text, lossy = raw.decode("utf-8", errors="replace"), True
            yield from decode_line(text, number, problems, lossy=lossy)


def read_trace_file(path: str | os.PathLike[str], problems: ReadProblems | None = None) -> list[SpanRecord]:
    """All readable spans of the file as a list (for tests and small files; the CLI streams)."""
    return list(iter_trace_file(path, problems if problems is not None else ReadProblems(os.fspath(path))))


def records_from_request(request: Mapping[str, Any]) -> list[SpanRecord]:
    """The well-formed spans of one decoded OTLP/JSON `ExportTraceServiceRequest` (malformed ones are left out)."""
    return decode_request(request, 0, ReadProblems("request"))
