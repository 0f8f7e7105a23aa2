"""Span records as trees, and a trace as compact aligned text.

```
trace 0000000000000000000000000000000a
rag                          1.25 s   in 1200  out 80  cached 300  $0.000540 + unpriced
├── rag.rewrite             300.0 ms  in  400  out 20              $0.000120             batch[0]
│   └── chat gpt-4o-mini    290.0 ms  in  400  out 20              $0.000120
├── rag.retrieve             20.0 ms                                                     ERROR ConnectionError: down
└── rag.answer              900.0 ms  in  800  out 60  cached 300  $0.000420 + unpriced
    └── rag.answer.predict  890.0 ms  in  800  out 60  cached 300  $0.000420 + unpriced
        ├── chat gpt-4o     600.0 ms  in  800  out 60  cached 300  $0.000420
        ├── chat gpt-4o       0.4 ms  in    0  out  0              $0.000000             cache:memory saved $0.000420
        └── chat mystery      1.0 ms  in    0  out  0               unpriced
```

A call whose price is unknown reads `unpriced`, never $0: a module whose calls are all unpriced says so, and
one with some priced calls shows their known cost `+ unpriced` (the HTML report's "unknown" and "+ ?").
A cache hit billed nothing still reads $0.000000; a priced call too cheap for six decimals shows the digits it
needs ($0.00000008), never $0.000000.

Spans nested deeper than `MAX_DRAWN_DEPTH` levels are not drawn: one row says how many were left out, so a
runaway recursion of 20,000 levels prints 65 rows, not 20,000 rows each 80,000 characters wide. Text from the
spans goes through `printable`: a name or error cannot move the cursor, retitle the terminal or forge a row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _semconv as semconv
from ._printable import printable
from ._scrub import scrub_error_text
from ._trace_records import SpanRecord

_MAX_ERROR_CHARS = 120
_GAP = "  "
_RED, _GREEN, _DIM = "31", "32", "2"
MAX_LABEL_CHARS = 160
"""A span's label is cut here in the text tree: the label column is as wide as its widest label."""
MAX_DRAWN_DEPTH = 64
"""Levels below the root drawn at most, by the text tree and the HTML report alike."""


@dataclass(slots=True)
class SpanNode:
    record: SpanRecord
    children: list[SpanNode] = field(default_factory=list)


@dataclass(slots=True)
class TraceTree:
    trace_id: str
    roots: list[SpanNode]
    """Usually one; more when spans' parents are missing (still open, dropped, or in another process)."""

    def walk(self) -> Iterator[tuple[SpanNode, SpanNode | None]]:
        """Every node with its parent, depth first in start order."""
        stack: list[tuple[SpanNode, SpanNode | None]] = [(root, None) for root in reversed(self.roots)]
        while stack:
            node, parent = stack.pop()
            yield node, parent
            stack.extend((child, node) for child in reversed(node.children))


def build_trees(records: Iterable[SpanRecord]) -> list[TraceTree]:
    """One tree per trace, earliest first; children in start order; an orphan span becomes a root.

    A span id seen twice in a trace (a broken producer) keeps its first span."""
    by_trace: dict[str, dict[str, SpanNode]] = {}
    for record in records:
        nodes = by_trace.setdefault(record.trace_id, {})
        if record.span_id not in nodes:
            nodes[record.span_id] = SpanNode(record)
    trees = []
    for trace_id, nodes in by_trace.items():
        roots: list[SpanNode] = []
        for node in nodes.values():
            parent = nodes.get(node.record.parent_span_id) if node.record.parent_span_id else None
            (roots if parent is None or parent is node else parent.children).append(node)
        roots.extend(_break_cycles(nodes, roots))
        for node in nodes.values():
            node.children.sort(key=_start)
        roots.sort(key=_start)
        trees.append(TraceTree(trace_id, roots))
    trees.sort(key=lambda tree: _start(tree.roots[0]))
    return trees


def _break_cycles(nodes: dict[str, SpanNode], roots: list[SpanNode]) -> list[SpanNode]:
    """New roots for spans no root reaches: parent links that form a cycle (a broken producer's file).

    Without this a trace made only of a cycle has no root, and a cycle beside a real root vanishes from the
    tree and from every sum. The earliest span of each cycle is cut from its parent and becomes a root.
    """
    reached = {id(node) for root in roots for node, _ in TraceTree("", [root]).walk()}
    new_roots: list[SpanNode] = []
    for node in sorted(nodes.values(), key=_start):
        if id(node) in reached:
            continue
        parent = nodes[str(node.record.parent_span_id)]  # unreached, so it has a parent in this trace
        parent.children.remove(node)
        new_roots.append(node)
        reached.update(id(n) for n, _ in TraceTree("", [node]).walk())
    return new_roots


def _start(node: SpanNode) -> int:
    return node.record.start_ns


# --- text -------------------------------------------------------------------------------------------

# A cell is (label, value): the value is right-aligned within its column so the numbers line up
# ("in  400" under "in 1200"); a plain left-aligned cell has an empty label. Columns, in order:
_LABEL, _DURATION, _IN, _OUT, _CACHED, _COST, _NOTES = range(7)
_RIGHT_ALIGNED = {_DURATION, _IN, _OUT, _CACHED, _COST}
Cell = tuple[str, str]


def render_tree(tree: TraceTree, *, color: bool = False, max_depth: int = MAX_DRAWN_DEPTH) -> str:
    """The trace as text, one line per span; `color` adds ANSI colours (for a terminal only)."""
    rows = [_row(item.record, prefix) if isinstance(item, SpanNode) else _hidden_row(item, prefix, max_depth)
            for item, prefix in _prefixed(tree, max_depth)]
    _align_costs(rows)
    widths = [_column_width(rows, column) for column in range(_NOTES)]
    lines = [f"trace {printable(tree.trace_id)}"]
    for row in rows:
        parts = []
        for column, width in enumerate(widths):
            if width:
                parts.append(_paint(_pad(row[column], column, width), _DIM, color and column == _DURATION))
        notes = [_paint(text, code, color) for text, code in row[_NOTES:]]
        lines.append(_GAP.join(parts + notes).rstrip())
    return "\n".join(lines)


def _prefixed(tree: TraceTree, max_depth: int) -> Iterator[tuple[SpanNode | int, str]]:
    """Each node with its box-drawing prefix ("│   └── "); below `max_depth`, the number of spans not drawn.

    Iterative, and the prefixes stop growing at the cap: memory and output stay linear in the spans drawn."""
    stack: list[tuple[SpanNode, str, str, int]] = [(root, "", "", 0) for root in reversed(tree.roots)]
    while stack:
        node, prefix, indent, depth = stack.pop()
        yield node, prefix
        if node.children and depth >= max_depth:
            yield count_below(node), indent + "└── "
            continue
        last = len(node.children) - 1
        for index in range(last, -1, -1):
            is_last = index == last
            stack.append((
                node.children[index],
                indent + ("└── " if is_last else "├── "),
                indent + ("    " if is_last else "│   "),
                depth + 1,
            ))


def count_below(node: SpanNode) -> int:
    """The spans under `node` (not counting it)."""
    hidden, stack = 0, list(node.children)
    while stack:
        hidden += 1
        stack.extend(stack.pop().children)
    return hidden


def hidden_text(hidden: int, max_depth: int) -> str:
    return f"… {hidden:,} more span{'' if hidden == 1 else 's'} deeper than {max_depth} levels not drawn"


def _hidden_row(hidden: int, prefix: str, max_depth: int) -> list[Any]:
    row: list[Any] = [None] * _NOTES
    row[_LABEL] = ("", prefix + hidden_text(hidden, max_depth))
    return row


def _column_width(rows: list[list[Any]], column: int) -> int:
    cells = [row[column] for row in rows if row[column] is not None]
    if not cells:
        return 0
    label = max(len(cell[0]) for cell in cells)
    value = max(len(cell[1]) for cell in cells)
    return label + value + (1 if label and column in _RIGHT_ALIGNED else 0)


def _pad(cell: Cell | None, column: int, width: int) -> str:
    if cell is None:
        return " " * width
    label, value = cell
    if column not in _RIGHT_ALIGNED:
        return (label + value).ljust(width)
    if not label:
        return value.rjust(width)
    return f"{label} {value.rjust(width - len(label) - 1)}"


def _paint(text: str, code: str | None, enabled: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code and text.strip() else text


def _row(record: SpanRecord, prefix: str) -> list[Any]:
    """Cells for the aligned columns, then (text, colour) notes."""
    facts = span_facts(record)
    row: list[Any] = [None] * _NOTES
    row[_LABEL] = ("", prefix + printable(facts.label, MAX_LABEL_CHARS))
    row[_DURATION] = ("", format_duration(record.duration_ms))
    if facts.tokens is not None:
        input_tokens, output_tokens, cached_tokens = facts.tokens
        row[_IN] = ("in", str(input_tokens))
        row[_OUT] = ("out", str(output_tokens))
        if cached_tokens:
            row[_CACHED] = ("cached", str(cached_tokens))
    cost = cost_text(facts)
    if cost is not None:
        row[_COST] = ("", cost)
    row.extend(_notes(facts))
    return row


def _align_costs(rows: list[list[Any]]) -> None:
    """Amounts line up on their last digit when some rows carry the ` + unpriced` mark."""
    marked = any(row[_COST] is not None and row[_COST][1].endswith(UNPRICED_MARK) for row in rows)
    for row in rows:
        if row[_COST] is not None:
            row[_COST] = ("", pad_cost(row[_COST][1], marked=marked))


def _notes(facts: SpanFacts) -> list[tuple[str, str | None]]:
    notes: list[tuple[str, str | None]] = []
    if facts.cache_layer is not None:
        text = f"cache:{printable(facts.cache_layer, MAX_LABEL_CHARS)}"
        saved = facts.saved_usd
        notes.append((f"{text} saved {format_usd(saved)}" if saved is not None else text, _GREEN))
    if facts.batch_index is not None:
        notes.append((f"batch[{facts.batch_index}]", None))
    if facts.error is not None:
        notes.append((f"ERROR {printable(facts.error)}".rstrip(), _RED))
    return notes


# --- what one span says about itself ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """The figures a tree shows for one span, whatever draws it (terminal text or the HTML report)."""

    label: str
    """The module path, else the span name."""
    tokens: tuple[int, int, int] | None
    """(input, output, cached) of an LM span or a module's roll-up; None when the span saw no LM call."""
    cost_usd: float | None
    """Known cost (an LM span's, or a module's roll-up of its priced calls)."""
    cost_unknown: bool
    """The span's own price, or part of its roll-up, is unknown: `cost_usd` is then not the whole cost."""
    cache_layer: str | None
    """On a cache hit: the layer that served it ("hit" when the layer was not recorded); else None."""
    saved_usd: float | None
    batch_index: int | None
    error: str | None
    """`<type>: <message>` when the span's status is ERROR (may be empty text), else None."""


def is_lm_call(attributes: Mapping[str, Any]) -> bool:
    """An LM span lmscope wrote for a call that got its answer: one LM call, to count and price, as `track()` does.

    Another DSPy instrumentation running beside lmscope (OpenInference's, Logfire's) wraps the same call in an LLM
    span of its own, which reaches the same file when it shares the TracerProvider; counting it too would report
    every call twice, once unpriced. lmscope's LM spans are the LLM and EMBEDDING spans with `lmscope.cache.hit`,
    which lmscope writes on every call that got its answer (no other producer writes lmscope's keys).

    A call that failed before any answer is not counted, as in `track()` and the module roll-ups: nothing was billed,
    and counting it would show an unknown price. Its span still carries the keys lmscope writes when a call starts
    (`lmscope.phase`, a DSPy call's `lmscope.settings.*`), which say nothing of an answer. A local embedding
    function's span (`lmscope.embedding.local`) is not one either: no provider was asked, nothing was billed, and a
    provider call the function makes itself is a span of its own, counted there."""
    return attributes.get(semconv.SPAN_KIND) in semconv.LM_CALL_KINDS and semconv.CACHE_HIT in attributes \
        and not attributes.get(semconv.EMBEDDING_LOCAL)


def span_facts(record: SpanRecord) -> SpanFacts:
    attributes = record.attributes
    hit = bool(attributes.get(semconv.CACHE_HIT))
    batch_index = attributes.get(semconv.BATCH_INDEX)
    cost = _first(attributes, semconv.GEN_AI_USAGE_COST, semconv.COST_TOTAL_USD)
    # An LM call without a cost (no known price) is unpriced, as the report counts it.
    unpriced_call = cost is None and is_lm_call(attributes)
    return SpanFacts(
        label=str(attributes.get(semconv.MODULE_PATH) or record.name),
        tokens=_usage(attributes),
        cost_usd=cost,
        cost_unknown=bool(attributes.get(semconv.COST_UNKNOWN)) or unpriced_call,
        cache_layer=str(attributes.get(semconv.CACHE_LAYER) or "hit") if hit else None,
        saved_usd=attributes.get(semconv.CACHE_SAVED_USD) if hit else None,
        batch_index=batch_index if isinstance(batch_index, int) else None,
        error=error_text(record) if record.status_code == "ERROR" else None,
    )


def _usage(attributes: dict[str, Any]) -> tuple[int, int, int] | None:
    """Tokens of an LM span (gen_ai.usage.*) or a module's roll-up (lmscope.usage.*, if it saw LM calls)."""
    if semconv.GEN_AI_USAGE_INPUT_TOKENS in attributes or semconv.GEN_AI_USAGE_OUTPUT_TOKENS in attributes:
        keys = (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
                semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    elif semconv.USAGE_INPUT_TOKENS in attributes and attributes.get(semconv.LM_CALLS) != 0:
        keys = (semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHED_TOKENS)
    else:
        return None
    input_key, output_key, cached_key = keys
    return attributes.get(input_key, 0), attributes.get(output_key, 0), attributes.get(cached_key, 0)


def error_text(record: SpanRecord) -> str:
    """`<type>: <message>` on one line, from the status, error.type and the exception event; scrubbed always
    (lmscope's own spans carry scrubbed errors already, other instrumentations' spans in a file may not)."""
    exception = next((event.attributes for event in record.events if event.name == "exception"), {})
    error_type = str(record.attributes.get(semconv.ERROR_TYPE) or exception.get("exception.type") or "")
    message = record.status_message or str(exception.get("exception.message") or "")
    # Instrumentors often put "Type: message" in the status already; do not say the type twice.
    if error_type and message and not message.startswith(f"{error_type}:"):
        text = f"{error_type}: {message}"
    else:
        text = message or error_type
    text = " ".join(scrub_error_text(text).split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    return next((attributes[key] for key in keys if key in attributes), None)


def format_duration(ms: float) -> str:
    # The trailing space after "s" keeps the unit column aligned with "ms" when right-aligned.
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s "


def format_usd(amount: float) -> str:
    """Six decimals (single LM calls cost fractions of a cent); a priced amount that six would print as $0.000000
    gets two significant digits instead: an embedding of a few tokens costs $0.00000008, which is not free."""
    text = f"${amount:.6f}"
    if amount == 0 or text.strip("$-0."):
        return text
    return f"${amount:.{1 - math.floor(math.log10(abs(amount)))}f}".rstrip("0")


UNPRICED = "unpriced"
"""What a text view shows for a cost nobody knows (the HTML report says "unknown"), never $0."""
UNPRICED_MARK = " + unpriced"
"""After a known amount when some calls it sums have no price: the amount is only a lower bound."""


def format_cost(known_usd: float | None, *, some_unpriced: bool, all_unpriced: bool) -> str:
    """A cost that may be partly or wholly unknown: `$0.000120`, `$0.000120 + unpriced` or `unpriced`."""
    if all_unpriced or known_usd is None:
        return UNPRICED
    return format_usd(known_usd) + (UNPRICED_MARK if some_unpriced else "")


def cost_text(facts: SpanFacts) -> str | None:
    """A span's cost cell: None when the span saw no LM call (nothing to price).

    Some price below the span is unknown: what is known is a lower bound, and nothing known (no cost, or a
    roll-up of 0 over unpriced calls) is `unpriced`, as the HTML tree reads it.
    """
    if not facts.cost_unknown:
        return format_usd(facts.cost_usd) if facts.cost_usd is not None else None
    return format_cost(facts.cost_usd, some_unpriced=True, all_unpriced=not facts.cost_usd)


def pad_cost(text: str, *, marked: bool) -> str:
    """`text` padded on the right so that, right-aligned, its amount lines up with the amounts of a column
    where some cells are `marked` with ` + unpriced`."""
    if not marked or text.endswith(UNPRICED_MARK):
        return text
    return text + " " * len(UNPRICED_MARK)
