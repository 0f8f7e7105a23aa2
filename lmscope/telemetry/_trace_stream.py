"""Span records, in file order, into one tree per trace as soon as the trace is complete.

A trace file is usually many small traces, each written in a few lines as its spans end; the root span ends
last. So a trace is taken as complete once its local root (a span with no parent, or whose parent is in another
process) has been read and the line that held it is finished, and its tree is handed on and forgotten: memory is
bounded by the traces still open, not by the file. A trace whose root never comes (a crashed run, another
producer that does not mark remote parents) is handed on once no span of it came for `IDLE_LINES` lines, or at
the end. A span that arrives after its trace was handed on (a thread that outlived its root) makes a second,
partial tree with the same trace id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ._read_problems import ReadProblems
from ._trace_records import SpanRecord
from ._tree import TraceTree, build_trees

IDLE_LINES = 1000
"""A trace without a root is taken as complete after this many lines without a span of it."""


def stream_trees(records: Iterable[SpanRecord], problems: ReadProblems | None = None) -> Iterator[TraceTree]:
    """Trees in the order their traces complete (those completed by one line: earliest first)."""
    # trace id -> span id -> record; kept in the order traces were last touched, least recent first
    open_traces: dict[str, dict[str, SpanRecord]] = {}
    last_line: dict[str, int] = {}
    rooted: dict[str, None] = {}  # traces whose root was read: complete at the end of its line
    line = 0
    for record in records:
        if record.line != line:
            line = record.line
            yield from _complete(open_traces, last_line, [*rooted, *_idle(last_line, line)])
            rooted.clear()
        trace_id = record.trace_id
        spans = open_traces.setdefault(trace_id, {})
        last_line.pop(trace_id, None)
        last_line[trace_id] = line  # to the end: the least recently touched trace stays first
        if record.span_id in spans:
            if problems is not None:
                problems.add(record.line, f"span id {record.span_id} appears twice in trace {trace_id}; "
                                          "the later span skipped")
            continue
        spans[record.span_id] = record
        if record.parent_span_id is None or record.remote_parent:
            rooted[trace_id] = None
    yield from _complete(open_traces, last_line, list(open_traces))


def _idle(last_line: dict[str, int], line: int) -> Iterator[str]:
    for trace_id, seen in last_line.items():
        if line - seen <= IDLE_LINES:
            return
        yield trace_id


def _complete(open_traces: dict[str, dict[str, SpanRecord]], last_line: dict[str, int],
              trace_ids: list[str]) -> Iterator[TraceTree]:
    if not trace_ids:
        return
    done = [open_traces.pop(trace_id) for trace_id in dict.fromkeys(trace_ids)]
    for trace_id in trace_ids:
        last_line.pop(trace_id, None)
    yield from build_trees(record for spans in done for record in spans.values())
