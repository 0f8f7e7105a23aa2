"""Spend by model and by module path, from LM spans only.

Module spans carry roll-ups of their subtree (lmscope.usage.*, lmscope.cost.total_usd); summing those
as well would count every call once per ancestor, so only LM spans are added up here, and only lmscope's own
(`is_lm_call`: another instrumentation's LLM span around the same call is not a second call). Each LM span is read back
into the `LMCall` it records and summed with `Spend`, as the roll-ups and `lmscope.track()` sum them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _semconv as semconv
from ._lm_call import LMCall
from ._printable import printable
from ._report_optimization import NO_PHASE, CompileSummary, EvaluationSummary, OptimizationBuilder, Scope, group
from ._spend import Spend
from ._trace_records import SpanRecord
from ._tree import MAX_LABEL_CHARS, UNPRICED_MARK, TraceTree, build_trees, format_cost, is_lm_call, pad_cost

NO_MODULE = "(no module)"
UNKNOWN_MODEL = "(unknown model)"


@dataclass(slots=True)
class Report:
    traces: int = 0
    by_model: dict[str, Spend] = field(default_factory=dict)
    """Model -> its calls' spend, costliest first."""
    by_module: dict[str, Spend] = field(default_factory=dict)
    """The nearest ancestor module span's lmscope.module.path -> its calls' spend, costliest first."""
    total: Spend = field(default_factory=Spend)
    by_phase: dict[str, Spend] = field(default_factory=dict)
    """`lmscope.phase` of the LM span (optimize, evaluate, serve; NO_PHASE in files from before it) -> its spend."""
    compiles: list[CompileSummary] = field(default_factory=list)
    """Each `optimize {Optimizer}` span, in start order: trials, best score, and the spend of the LM calls below."""
    evaluations: list[EvaluationSummary] = field(default_factory=list)
    """Each `dspy.Evaluate` span, in start order: score, size, errors, and the spend of the LM calls below."""


def summarize(records: Iterable[SpanRecord]) -> Report:
    return summarize_trees(build_trees(records))


def summarize_trees(trees: Iterable[TraceTree]) -> Report:
    """The same report from trees already built (the HTML page draws them too), or streamed one at a time."""
    builder = ReportBuilder()
    for tree in trees:
        builder.add(tree)
    return builder.report()


class ReportBuilder:
    """The report summed one trace at a time, so a file's trees need not all be held at once."""

    def __init__(self) -> None:
        self._by_model: dict[str, Spend] = {}
        self._by_module: dict[str, Spend] = {}
        self._total = Spend()
        # Ids rather than a count of trees: a span read after its trace's root arrives as a second tree.
        self._trace_ids: set[str] = set()
        self._optimization = OptimizationBuilder()

    def add(self, tree: TraceTree) -> None:
        self._trace_ids.add(tree.trace_id)
        module_of: dict[str, str | None] = {}  # span id -> nearest module path at or above it
        scopes: dict[str, tuple[Scope, ...]] = {}  # span id -> the compiles and evaluations it is part of
        for node, parent in tree.walk():
            attributes = node.record.attributes
            inherited = module_of.get(parent.record.span_id) if parent is not None else None
            module_of[node.record.span_id] = attributes.get(semconv.MODULE_PATH) or inherited
            call = lm_call_of_span(attributes) if is_lm_call(attributes) else None
            scopes[node.record.span_id] = self._optimization.add_span(
                node.record, scopes.get(parent.record.span_id, ()) if parent is not None else (), call)
            if call is None:
                continue
            group(self._by_model, call.model).add_call(call)
            group(self._by_module, str(inherited or NO_MODULE)).add_call(call)
            self._total.add_call(call)

    def report(self) -> Report:
        compiles, evaluations = self._optimization.finish()
        return Report(len(self._trace_ids), _ranked(self._by_model), _ranked(self._by_module), self._total,
                      _ranked(self._optimization.by_phase), compiles, evaluations)


def lm_call_of_span(attributes: Mapping[str, Any]) -> LMCall:
    """The figures an LM span recorded, as the `LMCall` `Spend` sums.

    Unpriced, as the tree and HTML views also show it: a span with no cost (a failed call, another producer's
    span) or with lmscope.cost.unknown (lmscope never writes a cost next to it; a cost another producer put there
    is not summed). A cache hit without lmscope.cache.saved_usd saved an unknown amount.
    """
    model = attributes.get(semconv.GEN_AI_REQUEST_MODEL) or attributes.get(semconv.LLM_MODEL_NAME) or UNKNOWN_MODEL
    cache_hit = bool(attributes.get(semconv.CACHE_HIT))
    return LMCall(
        model=str(model),
        provider=None,  # the report does not group by provider
        input_tokens=attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, 0),
        output_tokens=attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0),
        cached_tokens=attributes.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0),
        cost_usd=None if attributes.get(semconv.COST_UNKNOWN) else attributes.get(semconv.GEN_AI_USAGE_COST),
        cache_hit=cache_hit,
        saved_usd=attributes.get(semconv.CACHE_SAVED_USD) if cache_hit else None,
    )


def _ranked(groups: dict[str, Spend]) -> dict[str, Spend]:
    return dict(sorted(groups.items(), key=lambda item: (-item[1].cost_usd, -item[1].calls, item[0])))


# --- text -------------------------------------------------------------------------------------------

_HEADERS = ("calls", "input", "output", "cached", "cost USD", "cache hits", "saved USD", "unpriced")
_COST_COLUMNS = (5, 7)  # "cost USD" and "saved USD", after the key column


def render_report(report: Report) -> str:
    total = report.total
    traces = f"{report.traces} trace" + ("" if report.traces == 1 else "s")
    calls = f"{total.calls} LM call" + ("" if total.calls == 1 else "s")
    sections = [f"{calls} in {traces}", _table("model", report.by_model, total),
                _table("module", report.by_module, total)]
    if any(phase != NO_PHASE for phase in report.by_phase):  # files written before lmscope.phase have none
        sections.append(_table("phase", report.by_phase, total))
    if report.compiles:
        sections.append(_lay_out(_align_costs([
            ("compile", "trials", "best score", *_HEADERS),
            *((printable(c.optimizer, MAX_LABEL_CHARS), str(len(c.trials)), score_text(c.best_score),
               *_cells("", c.spend)[1:]) for c in report.compiles)], offset=2), footer=False))
    if report.evaluations:
        sections.append(_lay_out(_align_costs([
            ("evaluation", "phase", "examples", "errors", "score", *_HEADERS),
            *((printable(e.metric or "(no metric)", MAX_LABEL_CHARS), printable(e.phase, MAX_LABEL_CHARS),
               _count_text(e.examples), _count_text(e.errors), score_text(e.score), *_cells("", e.spend)[1:])
              for e in report.evaluations)], offset=4), footer=False))
    return "\n\n".join(sections)


def score_text(score: float | None) -> str:
    """A score as recorded, to 6 significant digits (75.0 -> 75, 66.666... -> 66.6667); "-" when there is none."""
    return "-" if score is None else f"{score:.6g}"


def _count_text(number: int | None) -> str:
    return "-" if number is None else str(number)


def _table(title: str, groups: dict[str, Spend], total: Spend) -> str:
    rows = [_cells(key, spend) for key, spend in groups.items()]
    return _lay_out(_align_costs([(title, *_HEADERS), *rows, _cells("total", total)]), footer=True)


def _lay_out(table: list[tuple[str, ...]], *, footer: bool) -> str:
    """Header, rule, rows (and, with `footer`, a rule and the last row as the total)."""
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]

    def line(row: tuple[str, ...]) -> str:
        # The key column reads left to right; numbers line up on the right.
        return "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    header, *body = (line(row) for row in table)
    if not footer:
        return "\n".join([header, rule, *body])
    *body, last = body
    return "\n".join([header, rule, *body, rule, last] if body else [header, rule, last])


def _cells(key: str, spend: Spend) -> tuple[str, ...]:
    # A group whose calls are all unpriced costs `unpriced`, never $0; some unpriced: the known part, marked.
    # Likewise for what cache hits saved when the price of the calls they repeat was unknown.
    return (
        printable(key, MAX_LABEL_CHARS),  # a name from the file: no raw control character, no 1 MB column
        str(spend.calls),
        str(spend.input_tokens),
        str(spend.output_tokens),
        str(spend.cached_tokens),
        format_cost(spend.cost_usd, some_unpriced=spend.unpriced_calls > 0,
                    all_unpriced=spend.calls > 0 and spend.unpriced_calls >= spend.calls),
        str(spend.cache_hits),
        format_cost(spend.saved_usd, some_unpriced=spend.unpriced_hits > 0,
                    all_unpriced=spend.cache_hits > 0 and spend.unpriced_hits >= spend.cache_hits),
        str(spend.unpriced_calls),
    )


def _align_costs(rows: list[tuple[str, ...]], offset: int = 0) -> list[tuple[str, ...]]:
    """Amounts (and the header) line up on their last digit in a column where some are marked ` + unpriced`;
    `offset` columns come between the key and the spend columns."""
    aligned = [list(row) for row in rows]
    for column in (c + offset for c in _COST_COLUMNS):
        marked = any(row[column].endswith(UNPRICED_MARK) for row in rows)
        for row in aligned:
            row[column] = pad_cost(row[column], marked=marked)
    return [tuple(row) for row in aligned]
