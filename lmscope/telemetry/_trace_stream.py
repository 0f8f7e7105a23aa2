"""Span records, in file order, into one tree per trace as soon as the trace is complete.

A trace file is usually many small traces, each written in a few lines as its spans end; the root span ends
last. So a trace is taken as complete once its root (a span with no parent) has been read and the line that
held it is finished, and its tree is handed on and forgotten: memory is bounded by the traces still open,
not by the file. Traces whose root never came (a crashed run, a root in another process) are built at the end.
A span that arrives after its trace was handed on (a thread that outlived its root) makes a second, partial
tree with the same trace id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ._read_problems import ReadProblems
from ._trace_records import SpanRecord
from ._tree import TraceTree, build_trees


def stream_trees(records: Iterable[SpanRecord], problems: ReadProblems | None = None) -> Iterator[TraceTree]:
    """Trees in the order their traces complete (those completed by one line: earliest first)."""
    open_traces: dict[str, dict[str, SpanRecord]] = {}  # trace id -> span id -> record
    rooted: dict[str, None] = {}  # traces whose root was read: complete at the end of its line
    line = 0
    for record in records:
        if record.line != line:
            yield from _complete(open_traces, rooted)
            line = record.line
        spans = open_traces.setdefault(record.trace_id, {})
        if record.span_id in spans:
            if problems is not None:
                problems.add(record.line, f"span id {record.span_id} appears twice in trace {record.trace_id}; "
                                          "the later span skipped")
            continue
        spans[record.span_id] = record
        if record.parent_span_id is None:
            rooted[record.trace_id] = None
    yield from _complete(open_traces, rooted)
    yield from build_trees(record for spans in open_traces.values() for record in spans.values())


def _complete(open_traces: dict[str, dict[str, SpanRecord]], rooted: dict[str, None]) -> Iterator[TraceTree]:
    if not rooted:
        return
    done = [open_traces.pop(trace_id) for trace_id in rooted]
    rooted.clear()
    yield from build_trees(record for spans in done for record in spans.values())
