"""`dspy.Evaluate`: a span per example holding that example's program spans, and its metric's span beneath it.

Evaluate's `process_item(example)` runs `program(**example.inputs())` then `metric(example, prediction)` in one of
ParallelExecutor's workers. Our `ParallelExecutor.execute` patch already runs each item in the launching context;
for an Evaluate run it also wraps the item in an `example {index}` span (`Evaluation.run_example`), so the program's
spans and the metric's hang under it. The metric is swapped, for this call only, for a function that calls the
user's metric with the same arguments inside a `metric {name}` span: an LM judge's calls (`dspy.evaluate.SemanticF1`)
land there, never beside the program's. The user's metric object is not touched.

The function carries the `__name__` DSPy derives from the metric (`__name__` of a function, else the class name), so
the table and the CSV/JSON columns Evaluate writes keep their names. DSPy callbacks (`on_evaluate_start`) see the
function in `inputs["metric"]`; `__wrapped__` leads back to the user's metric.

Neither span is a module: no `lmscope.module.path` and no module-duration metric (an example index as a metric label
would grow with the devset). The example span is the top of its worker's work, so it carries the DSPy settings
(`lmscope.settings.*`) and the batch index a batch item's top span carries; the program's span below it carries
`lmscope.module.call_index` 0 instead.
"""

from __future__ import annotations

import functools
import numbers
import threading
import types
from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ...telemetry import _semconv as semconv
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._phase import current_phase
from .._stack import attributed_to, drop_own_frame
from ._container_spans import ContainerEnd, ContainerStart
from ._containers import metric_name
from ._frames import ModuleFrame, app_suppressed
from ._runtime import NO_PATH, Runtime

EVALUATION_KEY = otel_context.create_key("lmscope-dspy-evaluation")
"""The `Evaluation` of the Evaluate call under way, in the context its ParallelExecutor launches from."""


class Evaluation:
    """One `Evaluate.__call__`: its span's frame and how many of its examples raised."""

    __slots__ = ("errors", "frame", "lock", "runtime")

    def __init__(self, runtime: Runtime, frame: ModuleFrame) -> None:
        self.runtime = runtime
        self.frame = frame
        self.errors = 0
        """Examples whose program or metric raised: what DSPy's ParallelExecutor counts as errors (and scores
        `failure_score`). Examples it cancelled after `max_errors` never ran and are not counted."""
        self.lock = threading.Lock()

    def run_example(self, index: int, function: Callable[[Any], Any], item: Any) -> Any:
        """`function(item)` (Evaluate's `process_item`) inside the span `example {index}`; called in the worker,
        with the launching context attached."""
        runtime = self.runtime
        try:
            frame = runtime.start_module(item, (), {}, name=f"example {index}",
                                         kind=semconv.KIND_CHAIN, path_owner=NO_PATH,
                                         extra={semconv.EVALUATION_EXAMPLE_INDEX: index})
        except Exception as exc:  # noqa: BLE001
            report_internal_error("evaluation example span start", exc)
            return function(item)
        try:
            result = function(item)
        except BaseException as error:
            if isinstance(error, Exception):  # what ParallelExecutor catches and counts; not KeyboardInterrupt
                with self.lock:
                    self.errors += 1
            drop_own_frame(error, type(self).run_example)  # first: the span records the traceback the program gets
            runtime.end_module(frame, None, error)
            raise
        # process_item returns (prediction, score): the score is exactly what Evaluate adds up
        value = metric_value(result[1]) if type(result) is tuple and len(result) == 2 else None
        if value is not None and frame.span.is_recording():
            frame.span.set_attribute(semconv.EVALUATION_METRIC_VALUE, value)
        runtime.end_module(frame, None, None)
        return result


def metric_value(value: Any) -> bool | int | float | None:
    """A metric's value as an attribute: a bool, int or float as it is; another real number (numpy's) as a float;
    a `dspy.Prediction(score=...)` (what `SemanticF1` returns, and what Evaluate adds up through its `float()`) as
    its score. Anything else is not recorded. A Prediction is read from its store, never through its hooks."""
    if type(value) in (bool, int, float):
        return value  # type: ignore[no-any-return]
    if isinstance(value, numbers.Real):
        return float(value)
    store = getattr(value, "__dict__", _NO_FIELDS).get("_store")
    if type(store) is dict and "score" in store:
        return metric_value(store["score"])
    return None


_NO_FIELDS: dict[str, Any] = {}


def traced_metric(runtime: Runtime, metric: Any) -> Callable[..., Any]:
    """A function that calls `metric` with the same arguments inside a `metric {name}` span."""
    span_name = semconv.METRIC_SPAN_NAME_PREFIX + metric_name(metric)

    def call_metric(*args: Any, **kwargs: Any) -> Any:
        if runtime.retired or app_suppressed():
            return metric(*args, **kwargs)
        try:
            frame = runtime.start_module(metric, (), {}, name=span_name, kind=semconv.KIND_EVALUATOR,
                                         path_owner=NO_PATH)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("metric span start", exc)
            return metric(*args, **kwargs)
        try:
            value = metric(*args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, call_metric)
            runtime.end_module(frame, None, error)
            raise
        recorded = metric_value(value)
        if recorded is not None and frame.span.is_recording():
            frame.span.set_attribute(semconv.EVALUATION_METRIC_VALUE, recorded)
        runtime.end_module(frame, None, None)
        return value

    # Evaluate names its table and CSV/JSON column `metric.__name__` for a function, else the class name
    call_metric.__name__ = call_metric.__qualname__ = (
        metric.__name__ if isinstance(metric, types.FunctionType) else metric.__class__.__name__)
    call_metric.__wrapped__ = metric  # type: ignore[attr-defined]
    return call_metric


def _with_traced_metric(runtime: Runtime, evaluator: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`Evaluate.__call__(program, metric=None, ...)`'s arguments with the metric it resolves (the call's, else the
    evaluator's) traced; unchanged when there is none (Evaluate then fails as it would)."""
    if len(args) > 1:
        metric = args[1] if args[1] is not None else getattr(evaluator, "metric", None)
        return ((args[0], traced_metric(runtime, metric), *args[2:]) if metric is not None else args), kwargs
    metric = kwargs.get("metric")
    metric = metric if metric is not None else getattr(evaluator, "metric", None)
    return args, ({**kwargs, "metric": traced_metric(runtime, metric)} if metric is not None else kwargs)


def evaluate_call(runtime: Runtime, original: Callable[..., Any], start: ContainerStart,
                  end: ContainerEnd) -> Callable[..., Any]:
    """`Evaluate.__call__`: the container span (`start`/`end`, `_container_spans.py`), with its error count, the
    example spans its workers open (`_wrappers.parallel_execute`) and the traced metric."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        frame = None
        if not app_suppressed():
            try:
                frame = start(self, args, kwargs)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("evaluate span start", exc)
        evaluation, token, called_args, called_kwargs = None, None, args, kwargs
        phase = current_phase()  # the Evaluate span's, made current by `start`
        if frame is not None:
            try:
                called_args, called_kwargs = _with_traced_metric(runtime, self, args, kwargs)
                evaluation, token = _begin(runtime, frame)
            except Exception as exc:  # noqa: BLE001 - the run goes on with the user's own arguments
                report_internal_error("evaluate examples setup", exc)
                called_args, called_kwargs = args, kwargs
        try:
            result = original(self, *called_args, **called_kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            if frame is not None:
                _finish(evaluation, token)
                end(frame, None, error)
            raise
        if frame is not None:
            _finish(evaluation, token)
            end(frame, result, None)
            _report_score(runtime, self, args, kwargs, result, phase)
        return result

    return wrapper


def _report_score(runtime: Runtime, evaluator: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                  phase: str) -> None:
    """Hand the run's score to the evaluation listeners (lmscope's metrics: the `lmscope.evaluation.score` gauge),
    under the name of the metric that made it: the call's (`Evaluate.__call__(program, metric=...)`), else the
    evaluator's."""
    if not runtime.evaluation_listeners:
        return
    try:
        score = getattr(result, "score", None)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            return
        metric = kwargs.get("metric") if "metric" in kwargs else (args[1] if len(args) > 1 else None)
        metric = metric if metric is not None else getattr(evaluator, "metric", None)
        name = metric_name(metric) if metric is not None else "(no metric)"
        for listener in runtime.evaluation_listeners:
            listener(name, float(score), phase)
    except Exception as exc:  # noqa: BLE001 - a listener's fault costs the point, not the run
        report_internal_error("evaluation score listeners", exc)


def evaluation_of(launching: Context, parent: Any) -> Evaluation | None:
    """The `Evaluation` whose executor runs in `launching` with `parent` its span's frame; None for any other run (a
    batch inside an evaluated program). Here, not in `_wrappers.parallel_execute`: with `num_threads=1` DSPy runs the
    items on the calling thread, under that wrapper's frame, whose globals DSPy's signature resolver reads."""
    evaluation = launching.get(EVALUATION_KEY)
    return evaluation if type(evaluation) is Evaluation and evaluation.frame is parent else None


def _begin(runtime: Runtime, frame: ModuleFrame) -> tuple[Evaluation, Token[Context]]:
    """The run's `Evaluation`, current for the workers its executor launches. Not in `wrapper` itself: a name its
    code uses is in its frame's globals, where DSPy looks for the types a signature names (`_stack.attributed_to`)."""
    evaluation = Evaluation(runtime, frame)
    return evaluation, otel_context.attach(otel_context.set_value(EVALUATION_KEY, evaluation))


def _finish(evaluation: Evaluation | None, token: Token[Context] | None) -> None:
    """Leave the evaluation's context and put its error count on the Evaluate span before it ends."""
    if token is not None:
        otel_context.detach(token)
    if evaluation is not None and evaluation.frame.span.is_recording():
        with evaluation.lock:
            evaluation.frame.span.set_attribute(semconv.EVALUATION_ERRORS, evaluation.errors)


# Between the program and DSPy's worker on the stack, so DSPy's stack walks take it for DSPy's own (`_stack.py`);
# made once the module has loaded, when every name it uses is there.
Evaluation.run_example = attributed_to("dspy", Evaluation.run_example)  # type: ignore[method-assign]
