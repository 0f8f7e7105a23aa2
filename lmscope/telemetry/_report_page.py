"""What the HTML report shows, gathered from span records: figures and trees, no markup.

Totals come from `report.ReportBuilder` (LM spans only, as the text report), so the page and
`lmscope report` agree to the digit; each trace gets its own total the same way. Trees are streamed: only
the `max_traces` earliest are kept (for drawing), so `lmscope report` without `--html` keeps none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from ._read_problems import ReadProblems
from ._report import Report, ReportBuilder, summarize_trees
from ._spend import Spend
from ._trace_records import SpanRecord
from ._trace_stream import stream_trees
from ._tree import TraceTree

MAX_TRACES = 500
"""Trees drawn at most; totals and charts always cover every trace."""


@dataclass(frozen=True, slots=True)
class TraceView:
    number: int
    """1-based, in start order."""
    tree: TraceTree
    spend: Spend
    """This trace's LM calls."""
    start_ns: int
    end_ns: int
    spans: int
    errors: int


@dataclass(frozen=True, slots=True)
class Page:
    source: str
    """The trace file's name, which titles the page."""
    report: Report
    traces: list[TraceView]
    """The first MAX_TRACES traces."""
    hidden_traces: int
    spans: int
    services: tuple[str, ...]
    start_ns: int | None
    end_ns: int | None


def gather_page(records: Iterable[SpanRecord], source: str, *, max_traces: int = MAX_TRACES,
                problems: ReadProblems | None = None) -> Page:
    """The page's figures, reading `records` once (a file is streamed through, never held)."""
    report = ReportBuilder()
    kept: list[tuple[int, int, TraceTree]] = []  # a heap of (-start, -order, tree): the latest start on top
    trees = spans = 0
    services: set[str] = set()
    start_ns: int | None = None
    end_ns: int | None = None
    for tree in stream_trees(records, problems):
        report.add(tree)
        records_of_tree = [node.record for node, _ in tree.walk()]
        spans += len(records_of_tree)
        services.update(str(record.resource["service.name"]) for record in records_of_tree
                        if "service.name" in record.resource)
        first, last = min(r.start_ns for r in records_of_tree), max(r.end_ns for r in records_of_tree)
        start_ns = first if start_ns is None else min(start_ns, first)
        end_ns = last if end_ns is None else max(end_ns, last)
        heapq.heappush(kept, (-first, -trees, tree))
        if len(kept) > max_traces:
            heapq.heappop(kept)  # the latest-starting of those kept
        trees += 1
    drawn = sorted(kept, reverse=True)  # earliest start first; ties in reading order
    return Page(
        source=source,
        report=report.report(),
        traces=[_trace_view(number, tree) for number, (_, _, tree) in enumerate(drawn, start=1)],
        hidden_traces=trees - len(drawn),
        spans=spans,
        services=tuple(sorted(services)),
        start_ns=start_ns,
        end_ns=end_ns,
    )


def _trace_view(number: int, tree: TraceTree) -> TraceView:
    records = [node.record for node, _ in tree.walk()]
    return TraceView(
        number=number,
        tree=tree,
        spend=summarize_trees([tree]).total,
        start_ns=min(record.start_ns for record in records),
        end_ns=max(record.end_ns for record in records),
        spans=len(records),
        errors=sum(record.status_code == "ERROR" for record in records),
    )
