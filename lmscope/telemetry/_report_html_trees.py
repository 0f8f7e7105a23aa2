"""Each trace as a collapsible tree: one `<details>` per span, so folding needs no script.

A span's row is its summary: name, kind, notes (cache layer, batch index, unknown price, error), a
timeline bar placed within the trace, then duration, tokens and cost in fixed-width columns that line up
at every depth. A span with children starts open; its attributes (and captured content) sit behind a
small closed "attributes" fold. A leaf's row opens onto its attributes directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import _semconv as semconv
from ._report_html_format import cost_html, count, esc, plural, utc_text
from ._report_page import TraceView
from ._scrub import scrub_error_text
from ._trace_file import SpanRecord
from ._tree import (
    MAX_DRAWN_DEPTH,
    SpanFacts,
    SpanNode,
    TraceTree,
    count_below,
    format_duration,
    format_usd,
    hidden_text,
    span_facts,
)

MAX_VALUE_CHARS = 2000
"""Attribute values (prompts, answers, documents) are cut here: the page stays small enough to open."""
_MIN_TIMELINE_PERCENT = 0.4
_KIND_CLASSES = {semconv.KIND_LLM: "kind-llm", semconv.KIND_EMBEDDING: "kind-llm", semconv.KIND_CHAIN: "kind-module",
                 semconv.KIND_AGENT: "kind-module",
                 semconv.KIND_RETRIEVER: "kind-retriever", semconv.KIND_TOOL: "kind-tool"}

COLUMNS_HTML = (
    '<div class="row cols"><span class="name">span</span><span class="notes"></span>'
    '<span class="timeline">timeline</span><span class="num">duration</span><span class="num">in</span>'
    '<span class="num">out</span><span class="num">cached</span><span class="num cost">cost</span></div>'
)


@dataclass(frozen=True, slots=True)
class _Window:
    """The trace's time span, for placing each span's timeline bar."""

    start_ns: int
    length_ns: int

    def place(self, record: SpanRecord) -> tuple[float, float]:
        if self.length_ns <= 0:
            return 0.0, 100.0
        left = (record.start_ns - self.start_ns) / self.length_ns * 100
        width = max((record.end_ns - record.start_ns) / self.length_ns * 100, _MIN_TIMELINE_PERCENT)
        left = min(max(left, 0.0), 100.0 - _MIN_TIMELINE_PERCENT)
        return left, min(width, 100.0 - left)


def trace_html(trace: TraceView, *, open_: bool) -> str:
    tree, spend = trace.tree, trace.spend
    roots = tree.roots
    name = span_facts(roots[0].record).label + (f" (+{len(roots) - 1} more roots)" if len(roots) > 1 else "")
    meta = [
        esc(utc_text(trace.start_ns, milliseconds=True) + " UTC"),
        esc(format_duration((trace.end_ns - trace.start_ns) / 1e6).strip()),
        plural(trace.spans, "span"),
        plural(spend.calls, "LM call"),
        cost_html(spend, compact=True),
    ]
    error_html = f'<span class="badge error">{plural(trace.errors, "error")}</span>' if trace.errors else ""
    body = _spans_html(tree, _Window(trace.start_ns, trace.end_ns - trace.start_ns))
    return (
        f'<details class="trace" id="trace-{trace.number}"{" open" if open_ else ""}>'
        f'<summary><span class="trace-number">#{trace.number}</span> <span class="trace-name">{esc(name)}</span> '
        f'{error_html}<span class="trace-meta">{" · ".join(meta)}</span>'
        f'<code class="trace-id">{esc(tree.trace_id)}</code></summary>'
        f'<div class="tree">{COLUMNS_HTML}<ul class="spans">{body}</ul></div></details>'
    )


def _spans_html(tree: TraceTree, window: _Window) -> str:
    # Iterative, not recursive: a trace file is untrusted input and may nest deeper than Python recurses.
    # Capped at MAX_DRAWN_DEPTH levels, as the text tree: browsers stop nesting elements a few hundred deep.
    parts: list[str] = []
    stack: list[tuple[SpanNode, int] | str] = [(root, 0) for root in reversed(tree.roots)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        node, depth = item
        record = node.record
        row = _row_html(record, span_facts(record), window)
        attributes = _attributes_html(record)
        if node.children:
            parts.append(
                f'<li><details class="span" open><summary class="row">{row}</summary>'
                f'<details class="attrs"><summary>attributes</summary>{attributes}</details><ul class="spans">'
            )
            stack.append("</ul></details></li>")
            if depth >= MAX_DRAWN_DEPTH:
                parts.append(f'<li class="hidden-spans">{esc(hidden_text(count_below(node), MAX_DRAWN_DEPTH))}</li>')
                continue
            stack.extend((child, depth + 1) for child in reversed(node.children))
        else:
            parts.append(f'<li><details class="span leaf"><summary class="row">{row}</summary>{attributes}'
                         '</details></li>')
    return "".join(parts)


def _row_html(record: SpanRecord, facts: SpanFacts, window: _Window) -> str:
    kind = str(record.attributes.get(semconv.SPAN_KIND) or "")
    bar_class = "kind-error" if facts.error is not None else _KIND_CLASSES.get(kind, "kind-other")
    left, width = window.place(record)
    input_tokens, output_tokens, cached_tokens = facts.tokens if facts.tokens is not None else (None, None, None)
    return (
        f'<span class="name">{esc(facts.label)}</span>'
        f'<span class="notes">{_kind_html(kind)}{_notes_html(facts)}</span>'
        f'<span class="timeline"><span class="tl {bar_class}" style="left:{left:.3f}%;width:{width:.3f}%">'
        '</span></span>'
        f'<span class="num dur">{esc(format_duration(record.duration_ms).strip())}</span>'
        f'<span class="num in">{_number(input_tokens)}</span>'
        f'<span class="num out">{_number(output_tokens)}</span>'
        f'<span class="num cached">{_number(cached_tokens or None)}</span>'
        f'<span class="num cost">{_cost(facts)}</span>'
    )


def _kind_html(kind: str) -> str:
    return f'<span class="kind">{esc(kind)}</span>' if kind else ""


def _notes_html(facts: SpanFacts) -> str:
    notes = []
    if facts.cache_layer is not None:
        saved = f" · saved {format_usd(facts.saved_usd)}" if facts.saved_usd is not None else ""
        notes.append(f'<span class="badge cache">cache: {esc(facts.cache_layer)}{esc(saved)}</span>')
    if facts.cost_unknown:
        notes.append('<span class="badge unpriced">price unknown</span>')
    if facts.batch_index is not None:
        notes.append(f'<span class="badge">batch[{facts.batch_index}]</span>')
    if facts.error is not None:
        text = f"ERROR {facts.error}".rstrip()
        notes.append(f'<span class="badge error" title="{esc(text)}">{esc(text)}</span>')
    return "".join(notes)


def _number(value: int | None) -> str:
    return count(value) if isinstance(value, int) else ""


def _cost(facts: SpanFacts) -> str:
    if not facts.cost_unknown:
        return esc(format_usd(facts.cost_usd)) if facts.cost_usd is not None else ""
    # Some price below this span is unknown: what is known is only a lower bound, and nothing known
    # (no cost, or a roll-up of 0 over unpriced calls) is "unknown", never $0.
    if facts.cost_usd:
        return f'{esc(format_usd(facts.cost_usd))} <span class="unknown" title="plus calls of unknown price">+ ?</span>'
    return '<span class="unknown">unknown</span>'


def _attributes_html(record: SpanRecord) -> str:
    rows = [(key, value) for key, value in sorted(record.attributes.items())]
    if record.status_code == "ERROR":
        rows.append(("status", scrub_error_text(f"ERROR {record.status_message}".rstrip())))
    for event in record.events:
        rows.extend((f"event {event.name}: {key}", scrub_error_text(value) if event.name == "exception"
                     and isinstance(value, str) else value) for key, value in sorted(event.attributes.items()))
    cells = "".join(f"<tr><th>{esc(key)}</th><td>{esc(_value_text(value))}</td></tr>" for key, value in rows)
    return f'<table class="attributes">{cells}</table>'


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"  # as OTLP/JSON and every backend spell it
    elif isinstance(value, (tuple, list, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"

