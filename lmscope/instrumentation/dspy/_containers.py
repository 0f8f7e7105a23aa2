"""What a batch, Parallel or Evaluate span says of the run as a whole: how many items went in, what came out.

A container span's children are the items; without a summary its own row in Phoenix or Langfuse is empty. The
counts (`lmscope.batch.size`, `lmscope.batch.failed`, `lmscope.evaluation.score`) are facts of the run, recorded
whatever the content settings; the same summary as JSON is the span's `input.value` / `output.value`, which only
captured content writes. Items themselves are never copied here: their own spans carry them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from typing import Any

from ...telemetry import _semconv as semconv

InputSummary = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], dict[str, Any]]
"""(the container's owner, args, kwargs) -> the summary of what it was given."""


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], position: int, name: str) -> Any:
    """A call's argument by position (after self) or keyword."""
    return args[position] if len(args) > position else kwargs.get(name)


def _count(items: Any) -> int | None:
    return len(items) if isinstance(items, Sized) and not isinstance(items, (str, bytes)) else None


def batch_input(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`Module.batch(examples, ...)`."""
    return {"examples": _count(_argument(args, kwargs, 0, "examples"))}


def parallel_input(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`Parallel.forward(exec_pairs, ...)`: (module, example) pairs."""
    return {"tasks": _count(_argument(args, kwargs, 0, "exec_pairs"))}


def evaluate_input(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`Evaluate.__call__(program, metric=None, devset=None, ...)`: the call's devset and metric, else the
    evaluator's own."""
    devset = _argument(args, kwargs, 2, "devset")
    metric = _argument(args, kwargs, 1, "metric")
    devset = devset if devset is not None else getattr(owner, "devset", None)
    metric = metric if metric is not None else getattr(owner, "metric", None)
    return {"examples": _count(devset), "metric": metric_name(metric) if metric is not None else None}


def metric_name(metric: Any) -> str:
    """A metric's name on spans: a function's or method's `__name__`, else its class name."""
    return str(getattr(metric, "__name__", None) or type(metric).__name__)


def output_summary(output: Any) -> dict[str, Any]:
    """What came out: Evaluate's score, or how many results and how many of them failed (DSPy puts None in a
    failed item's place, or, with `return_failed_examples=True`, returns (results, failed, exceptions))."""
    score, results = getattr(output, "score", None), getattr(output, "results", None)
    if isinstance(score, (int, float)) and isinstance(results, list):  # EvaluationResult
        return {"score": score, "results": len(results)}
    if isinstance(output, tuple) and len(output) == 3 and isinstance(output[0], list):
        return {"results": len(output[0]), "failed": _count(output[1])}
    if isinstance(output, list):
        return {"results": len(output), "failed": sum(item is None for item in output)}
    return {}


def start_attributes(summary: Mapping[str, Any]) -> dict[str, Any]:
    size = summary.get("examples", summary.get("tasks"))
    attributes: dict[str, Any] = {semconv.BATCH_SIZE: size} if type(size) is int else {}
    if "metric" in summary:  # Evaluate's: the devset's size and the metric's name
        if type(size) is int:
            attributes[semconv.EVALUATION_EXAMPLES] = size
        if type(summary["metric"]) is str:
            attributes[semconv.EVALUATION_METRIC] = summary["metric"]
    return attributes


def end_attributes(summary: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if type(summary.get("failed")) is int:
        attributes[semconv.BATCH_FAILED] = summary["failed"]
    if isinstance(summary.get("score"), (int, float)):
        attributes[semconv.EVALUATE_SCORE] = float(summary["score"])
    return attributes
