"""What compiles and evaluations cost and scored, and spend by phase, gathered from a trace's spans.

A compile is a span `optimize {Optimizer}` carrying `lmscope.optimizer.name` (its root, or a nested compile); its
trials are the spans below it with `lmscope.optimizer.trial` (the nearest compile's). An evaluation is a
`dspy.Evaluate` span: kind EVALUATOR with `lmscope.evaluation.examples` or `.score` (a `metric {name}` span is an
EVALUATOR too, but has neither). Their spend is summed from the LM spans below them, as every other figure of the
report is (`_report.py`): the roll-ups on the spans themselves would agree, but for calls a broken file lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _semconv as semconv
from ._lm_call import LMCall
from ._spend import Spend
from ._trace_records import SpanRecord

NO_PHASE = "(no phase)"


@dataclass(slots=True)
class CompileSummary:
    optimizer: str
    start_ns: int
    best_score: float | None
    trials: list[tuple[int, float | None]] = field(default_factory=list)
    """(trial index, its score or None), in trial order."""
    spend: Spend = field(default_factory=Spend)


@dataclass(slots=True)
class EvaluationSummary:
    metric: str | None
    start_ns: int
    phase: str
    examples: int | None
    errors: int | None
    score: float | None
    """What Evaluate returned; None when it raised."""
    spend: Spend = field(default_factory=Spend)


Scope = CompileSummary | EvaluationSummary


class OptimizationBuilder:
    """Compiles, evaluations and spend by phase, one span at a time (`report.ReportBuilder` feeds it)."""

    def __init__(self) -> None:
        self.compiles: list[CompileSummary] = []
        self.evaluations: list[EvaluationSummary] = []
        self.by_phase: dict[str, Spend] = {}

    def add_span(self, record: SpanRecord, inherited: tuple[Scope, ...], call: LMCall | None) -> tuple[Scope, ...]:
        """Count one span (in tree order: its parent came first) whose ancestors' scopes are `inherited`; returns
        the scopes its children are in. `call` is what the span recorded, if it is an LM call."""
        attributes = record.attributes
        if call is not None:
            phase = attributes.get(semconv.PHASE)
            group(self.by_phase, phase if type(phase) is str and phase else NO_PHASE).add_call(call)
            for scope in inherited:
                scope.spend.add_call(call)
            return inherited
        if semconv.OPTIMIZER_TRIAL in attributes:
            compile_ = next((scope for scope in reversed(inherited) if type(scope) is CompileSummary), None)
            if compile_ is not None and type(attributes[semconv.OPTIMIZER_TRIAL]) is int:
                compile_.trials.append((attributes[semconv.OPTIMIZER_TRIAL],
                                        _number(attributes.get(semconv.OPTIMIZER_SCORE))))
        if record.name.startswith(semconv.OPTIMIZE_SPAN_NAME_PREFIX) and semconv.OPTIMIZER_NAME in attributes:
            compile_ = CompileSummary(str(attributes[semconv.OPTIMIZER_NAME]), record.start_ns,
                                      _number(attributes.get(semconv.OPTIMIZER_BEST_SCORE)))
            self.compiles.append(compile_)
            return (*inherited, compile_)
        if attributes.get(semconv.SPAN_KIND) == semconv.KIND_EVALUATOR and (
                semconv.EVALUATION_EXAMPLES in attributes or semconv.EVALUATE_SCORE in attributes):
            metric = attributes.get(semconv.EVALUATION_METRIC)
            evaluation = EvaluationSummary(
                str(metric) if metric is not None else None, record.start_ns,
                str(attributes.get(semconv.PHASE) or NO_PHASE), _integer(attributes.get(semconv.EVALUATION_EXAMPLES)),
                _integer(attributes.get(semconv.EVALUATION_ERRORS)), _number(attributes.get(semconv.EVALUATE_SCORE)))
            self.evaluations.append(evaluation)
            return (*inherited, evaluation)
        return inherited

    def finish(self) -> tuple[list[CompileSummary], list[EvaluationSummary]]:
        """Compiles and evaluations in start order, trials in index order."""
        for compile_ in self.compiles:
            compile_.trials.sort(key=lambda trial: trial[0])
        return (sorted(self.compiles, key=lambda c: c.start_ns),
                sorted(self.evaluations, key=lambda e: e.start_ns))


def group(groups: dict[str, Spend], key: str) -> Spend:
    """`groups[key]`, made empty if missing."""
    spend = groups.get(key)
    if spend is None:
        spend = groups[key] = Spend()
    return spend


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _integer(value: Any) -> int | None:
    return value if type(value) is int else None
