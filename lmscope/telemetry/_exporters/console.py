"""Print each trace as a span tree when its local root span ends: the zero-setup way to see a run.

A "root" is the top of what this processor sees: on a provider lmscope shares with the app, lmscope's exporters see
only lmscope's spans, so a lmscope span whose parent is an app span is printed, with its subtree, when it ends.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from cachetools import LRUCache
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._attributes_on_export import with_attributes
from .._fork import renew_after_fork
from .._internal_errors import report_internal_error
from .._trace_file import records_from_spans
from .._tree import build_trees, render_tree

# Bounds, so a trace whose root never ends (a crashed worker, a root still open at exit) cannot leak:
# least recently touched traces are dropped first, and one huge trace keeps only its first spans (the
# printout then says how many it left out).
_MAX_TRACES = 1024
_MAX_SPANS_PER_TRACE = 10_000
_MAX_OPEN_SPANS = 100_000
"""Spans started and not ended yet that the processor remembers; past it (spans never ended) it forgets them all,
and at worst a tree prints in pieces."""


class ConsoleTreeProcessor(SpanProcessor):
    builds_attributes_on_export = True
    """Reads a span's attributes when it ends, stored there first if they were left for export."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        max_traces: int = _MAX_TRACES,
        max_spans_per_trace: int = _MAX_SPANS_PER_TRACE,
    ) -> None:
        self._stream = stream
        self._max_spans = max_spans_per_trace
        self._pending: LRUCache[int, _Pending] = LRUCache(maxsize=max_traces)
        self._open: set[int] = set()
        """Ids of spans started here and not ended: a parent not among them is not ours, its child is a root."""
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the traces pending in the parent print there; the child's are its own
        self._pending = LRUCache(maxsize=self._pending.maxsize)
        self._open = set()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if len(self._open) >= _MAX_OPEN_SPANS:
            self._open = set()
        self._open.add(span.context.span_id)  # one set operation, atomic under the GIL: no lock per span

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._on_end(span)
        except Exception as exc:  # noqa: BLE001 - a console printout must never break the app
            report_internal_error("console tree", exc)

    def _on_end(self, span: ReadableSpan) -> None:
        span = with_attributes(span)
        trace_id = span.context.trace_id
        parent = span.parent
        self._open.discard(span.context.span_id)
        with self._lock:
            if parent is not None and not parent.is_remote:
                if parent.span_id in self._open:  # its parent is ours and still open: keep it for later
                    pending = self._pending.get(trace_id)
                    if pending is None:
                        self._pending[trace_id] = _Pending([span])
                    elif len(pending.spans) < self._max_spans:
                        pending.spans.append(span)
                    else:
                        pending.dropped += 1
                    return
                # The top of what we see under a parent we do not (an app span): print its subtree only, other
                # subtrees of the trace may still be open.
                pending = _take_subtree(self._pending, trace_id, span.context.span_id)
            else:
                pending = self._pending.pop(trace_id, None) or _Pending([])
        pending.spans.append(span)
        # Rendering and writing happen outside the lock: other threads keep ending spans meanwhile.
        self._print(pending)

    def _print(self, pending: _Pending) -> None:
        # Resolved now, not at construction, so pytest's capsys or a later redirect of stderr is honoured.
        stream = self._stream if self._stream is not None else sys.stderr
        color = _wants_color(stream)
        text = "\n".join(render_tree(tree, color=color) for tree in build_trees(records_from_spans(pending.spans)))
        if pending.dropped:
            text += (f"\n… {pending.dropped:,} more span{'' if pending.dropped == 1 else 's'} not shown "
                     f"(the console keeps {self._max_spans:,} per trace)")
        stream.write(text + "\n")
        stream.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # a trace is printed when its root ends, not before

    def shutdown(self) -> None:
        with self._lock:
            self._pending.clear()


@dataclass(slots=True)
class _Pending:
    """The ended spans of a trace whose root has not ended yet, and how many more were left out."""

    spans: list[ReadableSpan]
    dropped: int = 0


def _take_subtree(pending_by_trace: LRUCache[int, _Pending], trace_id: int, root_id: int) -> _Pending:
    """Remove and return the pending spans of `trace_id` under `root_id`; the others stay pending."""
    pending = pending_by_trace.get(trace_id)
    if pending is None:
        return _Pending([])
    parent_of = {s.context.span_id: s.parent.span_id for s in pending.spans if s.parent is not None}
    under: dict[int, bool] = {root_id: True}

    def is_under(span_id: int) -> bool:
        chain = []
        while span_id not in under and span_id in parent_of:
            chain.append(span_id)
            span_id = parent_of[span_id]
        found = under.get(span_id, False)
        under.update(dict.fromkeys(chain, found))
        return found

    flags = [is_under(s.context.span_id) for s in pending.spans]
    taken = [s for s, flag in zip(pending.spans, flags) if flag]
    rest = [s for s, flag in zip(pending.spans, flags) if not flag]
    if rest:
        pending.spans = rest
        return _Pending(taken)
    del pending_by_trace[trace_id]
    return _Pending(taken, pending.dropped)


def _wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except Exception:  # noqa: BLE001 - closed or odd file-like objects
        return False
