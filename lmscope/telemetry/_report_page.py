"""What the HTML report shows, gathered from span records: figures and trees, no markup.

Totals come from `report.summarize_trees` (LM spans only, as the text report), so the page and
`lmscope report` agree to the digit; each trace gets its own total the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._report import Report, summarize_trees
from ._spend import Spend
from ._trace_file import SpanRecord
from ._tree import TraceTree, build_trees

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


def gather_page(records: Iterable[SpanRecord], source: str, *, max_traces: int = MAX_TRACES) -> Page:
    records = list(records)
    trees = build_trees(records)
    services = sorted({str(record.resource["service.name"]) for record in records if "service.name" in record.resource})
    return Page(
        source=source,
        report=summarize_trees(trees),
        traces=[_trace_view(number, tree) for number, tree in enumerate(trees[:max_traces], start=1)],
        hidden_traces=max(len(trees) - max_traces, 0),
        spans=len(records),
        services=tuple(services),
        start_ns=min((record.start_ns for record in records), default=None),
        end_ns=max((record.end_ns for record in records), default=None),
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
