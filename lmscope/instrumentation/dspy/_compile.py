"""`Teleprompter.compile`: one trace per compile, rooted at `optimize {Optimizer}`, in the `optimize` phase.

The root is a module frame without a module path (`step_span`): every LM call, module call and thread of the
compile rolls up into it as into a module span, and the phase it enters follows the work into DSPy's worker
threads. It says what the optimizer was given when it starts (`compile_start_attributes`) and what it returned
when it ends (`compile_end_attributes`). Steps inside (bootstrapping, trials) are `_optimizer_steps.py`.

DSPy wraps each subclass's own `compile` when the class is made (`Teleprompter.__init_subclass__`, for its callbacks):
lmscope wraps every class that defines `compile` in its own dict, and a class defined later as it is made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sized
from typing import Any

from opentelemetry import context as otel_context

from ...telemetry import _semconv as semconv
from ...telemetry._content import ContentPolicy
from ...telemetry._internal_errors import report_internal_error
from ._attributes import is_secret_key
from ._frames import ModuleFrame
from ._runtime import NO_PATH, Runtime
from ._wrappers import traced

COMPILE_KEY = otel_context.create_key("lmscope-dspy-compile")
"""The innermost `CompileRun` under way."""
_MAX_PARAM_CHARS = 256
_RUN_STATE = frozenset({"error_count", "total_calls", "prompt_model_total_calls"})
"""Counters optimizers keep next to their parameters (BootstrapFewShot's errors, MIPROv2's LM calls): not settings."""


class CompileRun:
    """One compile under way: its optimizer, its root frame, and the trials it has scored so far."""

    __slots__ = ("arguments", "best", "frame", "optimizer", "outer", "pending_candidate", "trials")

    def __init__(self, optimizer: Any, outer: CompileRun | None, arguments: Mapping[str, Any]) -> None:
        self.optimizer = optimizer
        self.arguments = arguments
        """The compile's keyword arguments (RandomSearch's `restrict` says which seeds it tries)."""
        self.outer = outer
        self.frame: ModuleFrame | None = None
        self.trials = 0
        self.best: float | None = None
        """The best score of the trials that could become best (full evaluations)."""
        self.pending_candidate: str | None = None
        """What the optimizer chose for the trial it is about to score (MIPROv2's instruction and demo indices)."""

    def next_trial(self) -> int:
        index = self.trials
        self.trials += 1
        return index

    def scored(self, score: float, can_be_best: bool = True) -> bool:
        """Record a trial's score; whether it became the best so far (strictly better, as DSPy's optimizers keep)."""
        if not can_be_best or (self.best is not None and score <= self.best):
            return False
        self.best = score
        return True

    def running(self, optimizer: Any) -> bool:
        run: CompileRun | None = self
        while run is not None:
            if run.optimizer is optimizer:
                return True
            run = run.outer
        return False


def current_run() -> CompileRun | None:
    run = otel_context.get_value(COMPILE_KEY)
    return run if type(run) is CompileRun else None


def step_span(runtime: Runtime, optimizer: Any, name: str, attributes: Mapping[str, Any]) -> ModuleFrame:
    """A span for a compile or a step of one (a trial, a bootstrap attempt) that rolls up what runs inside it.

    Not a container frame: `Evaluate` and `Parallel` skip their own span directly under a container (there it is a
    batch's), and an optimizer's evaluations must keep theirs. Without a module of its own (`NO_PATH`) it has no
    module path, adds no module-duration point, and the program's modules inside keep the paths they have outside."""
    return runtime.start_module(optimizer, (), {}, name=name, kind=semconv.KIND_CHAIN,
                                path_owner=NO_PATH, extra=attributes, phase=semconv.PHASE_OPTIMIZE)


def end_step(runtime: Runtime, frame: ModuleFrame, build: Callable[[], Mapping[str, Any]],
             error: BaseException | None) -> None:
    """End a step's span with the attributes `build()` returns (a builder's fault costs its attributes)."""
    if error is None and frame.span.is_recording():
        try:
            frame.span.set_attributes(build())
        except Exception as exc:  # noqa: BLE001
            report_internal_error("optimizer step attributes", exc)
    runtime.end_module(frame, None, error)


def compile_call(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`compile` of one optimizer class: the root span, unless this very optimizer is already compiling (a subclass's
    `super().compile(...)`): the outer call's span covers it."""

    def start(optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, CompileRun] | None:
        outer = current_run()
        if runtime.retired or (outer is not None and outer.running(optimizer)):
            return None
        run = CompileRun(optimizer, outer, kwargs)
        token = otel_context.attach(otel_context.set_value(COMPILE_KEY, run))
        try:
            run.frame = step_span(runtime, optimizer, semconv.OPTIMIZE_SPAN_NAME_PREFIX + type(optimizer).__name__,
                                  compile_start_attributes(optimizer, args, kwargs, runtime.content))
        except BaseException:
            otel_context.detach(token)
            raise
        return token, run

    def end(started: tuple[Any, CompileRun] | None, output: Any, error: BaseException | None) -> None:
        if started is None:
            return
        token, run = started
        try:
            if run.frame is not None:
                end_step(runtime, run.frame, lambda: compile_end_attributes(run, output), error)
        finally:
            otel_context.detach(token)

    return traced(original, start, end, "compile span start", suppressible=True)


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], position: int, name: str) -> Any:
    return args[position] if len(args) > position else kwargs.get(name)


def _size(items: Any) -> int | None:
    return len(items) if isinstance(items, Sized) and not isinstance(items, (str, bytes, Mapping)) else None


def _name_of(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "__name__", None) or type(value).__name__


def optimizer_params(optimizer: Any, policy: ContentPolicy) -> dict[str, Any]:
    """`lmscope.optimizer.params.*`: the optimizer's public scalar settings, none under a credential-looking key.

    Like settings, they are recorded whatever `capture_content` says, so string values (a prompt, a model route)
    go through the scrubber for credential shapes (`sk-...`, `user:pass@`), then are cut to 256 characters; a
    redaction sets `lmscope.scrubbed=true`."""
    params: dict[str, Any] = {}
    scrubbed = False
    for key, value in getattr(optimizer, "__dict__", {}).items():
        if key.startswith("_") or key in _RUN_STATE or type(value) not in (bool, int, float, str) \
                or is_secret_key(key):
            continue
        name = semconv.OPTIMIZER_PARAMS_PREFIX + key
        if type(value) is str:
            value, redacted = policy.text(value, name, max_chars=_MAX_PARAM_CHARS)
            scrubbed = scrubbed or redacted
        params[name] = value
    if scrubbed:
        params[semconv.SCRUBBED] = True
    return params


def compile_start_attributes(optimizer: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                             policy: ContentPolicy) -> dict[str, Any]:
    """What the compile was given: `compile(student, *, trainset, teacher=None, valset=None, ...)`, or what the
    optimizer holds."""
    attributes: dict[str, Any] = {semconv.OPTIMIZER_NAME: type(optimizer).__name__,
                                  **optimizer_params(optimizer, policy)}
    fields = getattr(optimizer, "__dict__", {})
    student = _argument(args, kwargs, 0, "student")
    # KNNFewShot takes its trainset in `__init__` and keeps it on its KNN retriever.
    trainset = kwargs.get("trainset", fields.get("trainset", getattr(fields.get("KNN"), "trainset", None)))
    valset = kwargs.get("valset", fields.get("valset"))
    facts = {
        semconv.OPTIMIZER_TRAINSET_SIZE: _size(trainset),
        semconv.OPTIMIZER_VALSET_SIZE: _size(valset),
        semconv.OPTIMIZER_METRIC: _name_of(fields.get("metric", fields.get("metric_fn"))),  # GEPA: metric_fn
        semconv.OPTIMIZER_STUDENT: type(student).__name__ if hasattr(student, "named_predictors") else None,
        semconv.OPTIMIZER_TEACHER: type(kwargs["teacher"]).__name__ if kwargs.get("teacher") is not None else None,
    }
    attributes.update((key, value) for key, value in facts.items() if value is not None)
    return attributes


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def best_score(run: CompileRun, program: Any) -> float | None:
    """The best score as the optimizer kept it: MIPROv2's `program.score`, the scores of RandomSearch's
    `candidate_programs`, GEPA's `detailed_results`; else the best trial lmscope saw."""
    fields = getattr(program, "__dict__", {})
    score = _number(fields.get("score"))
    if score is not None:
        return score
    candidates = fields.get("candidate_programs")
    if type(candidates) is list:
        scores = [s for s in (_number(c.get("score")) for c in candidates if type(c) is dict) if s is not None]
        if scores:
            return max(scores)
    results = fields.get("detailed_results")
    aggregate = getattr(results, "val_aggregate_scores", None)
    best_index = getattr(results, "best_idx", None)
    if isinstance(aggregate, list) and type(best_index) is int and 0 <= best_index < len(aggregate):
        return _number(aggregate[best_index])
    return run.best


def demo_counts(program: Any) -> str | None:
    """JSON {predictor path: demo count} of the returned program, its paths as `named_predictors()` names them."""
    named = getattr(program, "named_predictors", None)
    if not callable(named):
        return None
    counts = {name: len(getattr(predictor, "demos", None) or ()) for name, predictor in named()}
    return json.dumps(counts, sort_keys=True)


def compile_end_attributes(run: CompileRun, program: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    score = best_score(run, program)
    if score is not None:
        attributes[semconv.OPTIMIZER_BEST_SCORE] = score
    demos = demo_counts(program)
    if demos is not None:
        attributes[semconv.OPTIMIZER_DEMOS] = demos
    return attributes
