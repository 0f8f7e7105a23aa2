"""Spend by model and by module path, from LM spans only.

Module spans carry roll-ups of their subtree (lmscope.usage.*, lmscope.cost.total_usd); summing those
as well would count every call once per ancestor, so only LM spans are added up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import _semconv as semconv
from ._trace_file import SpanRecord
from ._tree import TraceTree, build_trees, format_usd

NO_MODULE = "(no module)"
UNKNOWN_MODEL = "(unknown model)"


@dataclass(slots=True)
class Usage:
    """What a group of LM calls consumed."""

    key: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    """Known cost only; calls without a price are counted in `unknown_cost_calls`, never as 0."""
    cache_hits: int = 0
    saved_usd: float = 0.0
    unknown_cost_calls: int = 0

    def add(self, attributes: dict[str, Any]) -> None:
        self.calls += 1
        self.input_tokens += attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, 0)
        self.output_tokens += attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
        self.cached_tokens += attributes.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
        cost = attributes.get(semconv.GEN_AI_USAGE_COST)
        if cost is not None:
            self.cost_usd += cost
        if attributes.get(semconv.COST_UNKNOWN) or cost is None:
            self.unknown_cost_calls += 1
        if attributes.get(semconv.CACHE_HIT):
            self.cache_hits += 1
            self.saved_usd += attributes.get(semconv.CACHE_SAVED_USD, 0.0)

    def merge(self, other: Usage) -> None:
        """Add another group's figures (for an "everything else" row)."""
        for name in _SUMMED_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_SUMMED_FIELDS = tuple(name for name in Usage.__dataclass_fields__ if name != "key")


@dataclass(slots=True)
class Report:
    traces: int = 0
    by_model: list[Usage] = field(default_factory=list)
    by_module: list[Usage] = field(default_factory=list)
    """Keyed by the nearest ancestor module span's lmscope.module.path."""
    total: Usage = field(default_factory=lambda: Usage("total"))


def summarize(records: Iterable[SpanRecord]) -> Report:
    return summarize_trees(build_trees(records))


def summarize_trees(trees: Sequence[TraceTree]) -> Report:
    """The same report from trees already built (the HTML page draws them too)."""
    by_model: dict[str, Usage] = {}
    by_module: dict[str, Usage] = {}
    total = Usage("total")
    for tree in trees:
        module_of: dict[str, str | None] = {}  # span id -> nearest module path at or above it
        for node, parent in tree.walk():
            attributes = node.record.attributes
            inherited = module_of.get(parent.record.span_id) if parent is not None else None
            module_of[node.record.span_id] = attributes.get(semconv.MODULE_PATH) or inherited
            if attributes.get(semconv.SPAN_KIND) != semconv.KIND_LLM:
                continue
            model = str(attributes.get(semconv.GEN_AI_REQUEST_MODEL) or attributes.get(semconv.LLM_MODEL_NAME)
                        or UNKNOWN_MODEL)
            module = str(inherited or NO_MODULE)
            for groups, key in ((by_model, model), (by_module, module)):
                usage = groups.get(key)
                if usage is None:
                    usage = groups[key] = Usage(key)
                usage.add(attributes)
            total.add(attributes)
    return Report(len(trees), _ranked(by_model), _ranked(by_module), total)


def _ranked(groups: dict[str, Usage]) -> list[Usage]:
    return sorted(groups.values(), key=lambda usage: (-usage.cost_usd, -usage.calls, usage.key))


# --- text -------------------------------------------------------------------------------------------

_HEADERS = ("calls", "input", "output", "cached", "cost USD", "cache hits", "saved USD", "unknown cost")


def render_report(report: Report) -> str:
    total = report.total
    traces = f"{report.traces} trace" + ("" if report.traces == 1 else "s")
    calls = f"{total.calls} LM call" + ("" if total.calls == 1 else "s")
    return "\n\n".join((
        f"{calls} in {traces}",
        _table("model", report.by_model, total),
        _table("module", report.by_module, total),
    ))


def _table(title: str, rows: list[Usage], total: Usage) -> str:
    table = [(title, *_HEADERS)] + [_cells(usage) for usage in (*rows, total)]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]

    def line(row: tuple[str, ...]) -> str:
        # The key column reads left to right; numbers line up on the right.
        return "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    header, *body, footer = (line(row) for row in table)
    return "\n".join([header, rule, *body, rule, footer] if body else [header, rule, footer])


def _cells(usage: Usage) -> tuple[str, ...]:
    return (
        usage.key,
        str(usage.calls),
        str(usage.input_tokens),
        str(usage.output_tokens),
        str(usage.cached_tokens),
        format_usd(usage.cost_usd),
        str(usage.cache_hits),
        format_usd(usage.saved_usd),
        str(usage.unknown_cost_calls),
    )
