"""The steps of a compile that DSPy's optimizers expose a hook for: bootstrap attempts and scored trials.

- `bootstrap {example index}`: `BootstrapFewShot._bootstrap_one_example`, once per training example (and round)
  tried: the metric's verdict and whether the teacher's trace became demos.
- `trial {index}` (0, 1, 2 ... in the order tried): `BootstrapFewShotWithRandomSearch` scores each candidate with
  the `Evaluate` its module looks up by name, so that name is pointed at a subclass whose call is the trial (the
  candidate is the seed). MIPROv2 scores each candidate through `eval_candidate_program`, looked up by name in its
  module; the instruction and demo-set indices of the candidate come from `_select_and_insert_instructions_and_demos`.
- GEPA: a `trial {index}` per candidate its engine reports evaluated on the valset (`notify_callbacks`), the
  candidate being GEPA's candidate index.
- `propose {predictor path}`: MIPROv2's `GroundedProposer.propose_instruction_for_predictor`, once per instruction
  proposed, with the instruction under the content rules.
Nothing here changes what the optimizer computes: the wrappers pass arguments and results through untouched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from ...telemetry import _semconv as semconv
from ...telemetry._internal_errors import report_internal_error
from .._stack import drop_own_frame
from ._compile import CompileRun, current_run, end_step, step_span
from ._frames import ModuleFrame, app_suppressed
from ._runtime import Runtime
from ._wrappers import traced


def _example_index(optimizer: Any, example: Any) -> int | None:
    trainset = getattr(optimizer, "__dict__", {}).get("trainset")
    if isinstance(trainset, list):
        for index, item in enumerate(trainset):
            if item is example:
                return index
    return None


def _demo_total(optimizer: Any) -> int:
    traces = getattr(optimizer, "__dict__", {}).get("name2traces")
    return sum(len(demos) for demos in traces.values()) if isinstance(traces, dict) else 0


def bootstrap_one_example(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`BootstrapFewShot._bootstrap_one_example(example, round_idx=0) -> success`. DSPy catches the teacher's and the
    metric's errors inside it (counting them in `error_count`): an attempt that failed so has no metric verdict."""

    def start(optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Attempt | None:
        if runtime.retired or current_run() is None:
            return None
        index = _example_index(optimizer, args[0] if args else kwargs.get("example"))
        fields = optimizer.__dict__
        extra = {semconv.OPTIMIZER_EXAMPLE_INDEX: index} if index is not None else {}
        before = (fields.get("error_count"), _demo_total(optimizer))  # read before the span starts, as it runs
        frame = step_span(runtime, optimizer, f"bootstrap {index if index is not None else '?'}", extra)
        return _Attempt(frame, optimizer, *before)

    def end(attempt: _Attempt | None, success: Any, error: BaseException | None) -> None:
        if attempt is None:
            return

        def outcome() -> dict[str, Any]:
            accepted = _demo_total(attempt.optimizer) > attempt.demos
            attributes: dict[str, Any] = {semconv.OPTIMIZER_DEMO_ACCEPTED: accepted}
            if attempt.optimizer.__dict__.get("error_count") == attempt.errors:
                attributes[semconv.OPTIMIZER_METRIC_PASSED] = bool(success)
            return attributes

        end_step(runtime, attempt.frame, outcome, error)

    return traced(original, start, end, "bootstrap span start", suppressible=True)


class _Attempt(NamedTuple):
    """A bootstrap attempt in flight: its span, and the optimizer's error and demo counts before it."""

    frame: ModuleFrame
    optimizer: Any
    errors: Any
    demos: int


def traced_trial(runtime: Runtime, run: CompileRun, candidate: str | None, call: Callable[[], Any],
                 can_be_best: Callable[[], bool]) -> Any:
    """Run `call()` (an evaluation returning something with a `score`) as the next trial of `run`. An error leaves
    without this function's and `call`'s frames in its traceback (the caller drops its own): the optimizer gets the
    traceback it would get untraced."""
    frame = _trial_span(runtime, run, candidate)
    try:
        result = call()
    except BaseException as error:
        drop_own_frame(error, traced_trial)
        drop_own_frame(error, call)
        if frame is not None:
            end_step(runtime, frame, dict, error)
        raise
    if frame is None:
        return result

    def outcome() -> dict[str, Any]:
        score = getattr(result, "score", None)
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            return {}
        return {semconv.OPTIMIZER_SCORE: float(score),
                semconv.OPTIMIZER_BEST_SO_FAR: run.scored(float(score), can_be_best())}

    end_step(runtime, frame, outcome, None)
    return result


def _trial_span(runtime: Runtime, run: CompileRun, candidate: str | None) -> ModuleFrame | None:
    """The span of `run`'s next trial, None when it could not be started (the trial runs untraced)."""
    try:
        index = run.next_trial()
        extra: dict[str, Any] = {semconv.OPTIMIZER_TRIAL: index}
        if candidate is not None:
            extra[semconv.OPTIMIZER_CANDIDATE] = candidate
        return step_span(runtime, run.optimizer, f"trial {index}", extra)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("trial span start", exc)
        return None


def random_search_evaluate(runtime: Runtime, evaluate: type) -> type:
    """`random_search.Evaluate`: the same class but for its call, which is the trial of the candidate it scores.
    The candidate's seed is the optimizer's: -3 (zero-shot), -2 (labels only), -1 (unshuffled), then 0, 1, 2 ..."""

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            run = current_run()
            if runtime.retired or app_suppressed() or run is None:
                return evaluate.__call__(self, *args, **kwargs)
            seeds = _random_search_seeds(run)
            seed = seeds[run.trials] if run.trials < len(seeds) else None
            return traced_trial(runtime, run, str(seed) if seed is not None else None,
                                lambda: evaluate.__call__(self, *args, **kwargs), lambda: True)
        except BaseException as error:  # Evaluate's own (`max_errors` reached), with its traceback as untraced
            drop_own_frame(error, __call__)
            raise

    return type(evaluate.__name__, (evaluate,), {"__call__": __call__, "__module__": evaluate.__module__,
                                                 "__qualname__": evaluate.__qualname__})


def _random_search_seeds(run: CompileRun) -> list[int]:
    """The seeds RandomSearch tries, in order: `range(-3, num_candidate_sets)`, less those its `restrict` leaves out."""
    count = getattr(run.optimizer, "__dict__", {}).get("num_candidate_sets")
    restrict = run.arguments.get("restrict")
    if type(count) is not int:
        return []
    return [seed for seed in range(-3, count) if restrict is None or seed in set(restrict)]


def mipro_choice(original: Callable[..., Any]) -> Callable[..., Any]:
    """`MIPROv2._select_and_insert_instructions_and_demos(program, instructions, demos, trial, trial_logs,
    trial_num)`: the indices it chose are the next trial's candidate. Read from the trial's log entry, where every
    release writes them right (DSPy 3.0's returned pair records the instruction index as the demos index)."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        chosen = original(self, *args, **kwargs)
        run = current_run()
        if run is not None and run.optimizer is self:
            try:
                trial_logs = args[4] if len(args) > 4 else kwargs["trial_logs"]
                trial_num = args[5] if len(args) > 5 else kwargs["trial_num"]
                choice = {key: value for key, value in trial_logs[trial_num].items()
                          if key.endswith(("_instruction", "_demos"))}
                run.pending_candidate = json.dumps(choice, sort_keys=True)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("MIPROv2 candidate", exc)
        return chosen

    return wrapper


def mipro_eval(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`eval_candidate_program(batch_size, valset, program, evaluate, rng)` in MIPROv2's module: one trial. Only a
    full evaluation can become MIPROv2's best (a minibatch score never does); the first trial is the default
    program, before any choice."""

    @functools.wraps(original)
    def wrapper(batch_size: Any, valset: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            run = current_run()
            if runtime.retired or app_suppressed() or run is None:
                return original(batch_size, valset, *args, **kwargs)
            candidate = run.pending_candidate if run.pending_candidate is not None else (
                "default" if run.trials == 0 else None)
            run.pending_candidate = None

            def full() -> bool:
                return type(batch_size) is int and isinstance(valset, list) and batch_size >= len(valset)

            return traced_trial(runtime, run, candidate, lambda: original(batch_size, valset, *args, **kwargs), full)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper


def _predictor_path(program: Any, predictor: Any) -> str | None:
    for name, each in program.named_predictors():
        if each is predictor:
            return str(name)
    return None


def propose_instruction(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`GroundedProposer.propose_instruction_for_predictor(program=, predictor=, ...) -> instruction` (MIPROv2's
    proposals): `propose {predictor path}`; the instruction is output content, recorded only when outputs are
    captured, scrubbed and limited like any."""

    def start(proposer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame | None:
        run = current_run()
        if runtime.retired or run is None:
            return None
        path = _predictor_path(kwargs["program"], kwargs["predictor"])  # positional arguments: no span (it raises)
        extra = {semconv.OPTIMIZER_PREDICTOR: path} if path is not None else {}
        return step_span(runtime, run.optimizer, f"propose {path}", extra)

    def end(frame: ModuleFrame | None, instruction: Any, error: BaseException | None) -> None:
        if frame is None:
            return

        def outcome() -> dict[str, Any]:
            if not runtime.content.capture_outputs or not isinstance(instruction, str):
                return {}
            text, redacted = runtime.content.text(instruction, semconv.OPTIMIZER_INSTRUCTION, free_text=True)
            return {semconv.OPTIMIZER_INSTRUCTION: text, **({semconv.SCRUBBED: True} if redacted else {})}

        end_step(runtime, frame, outcome, error)

    return traced(original, start, end, "proposal span start", suppressible=True)


def gepa_notify(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`notify_callbacks(callbacks, method_name, event)` in GEPA's engine, called for every event whether or not
    anyone listens: each `on_valset_evaluated` (the seed program, then every candidate GEPA accepted) is a trial,
    marked when GEPA reports it. GEPA evaluates before it reports, and not in one call lmscope could wrap: the
    evaluation's spans are the trial's earlier siblings, not its children."""

    @functools.wraps(original)
    def wrapper(callbacks: Any, method_name: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if method_name == "on_valset_evaluated" and not runtime.retired and not app_suppressed():
            run = current_run()
            if run is not None:
                _gepa_trial(runtime, run, event)
        return original(callbacks, method_name, event, *args, **kwargs)

    return wrapper


def _gepa_trial(runtime: Runtime, run: CompileRun, event: Any) -> None:
    try:
        candidate, score = event.get("candidate_idx"), event.get("average_score")
        index = run.next_trial()
        extra: dict[str, Any] = {semconv.OPTIMIZER_TRIAL: index, semconv.OPTIMIZER_CANDIDATE: str(candidate)}
        frame = step_span(runtime, run.optimizer, f"trial {index}", extra)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("GEPA trial", exc)
        return

    def outcome() -> dict[str, Any]:
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            return {}
        return {semconv.OPTIMIZER_SCORE: float(score), semconv.OPTIMIZER_BEST_SO_FAR: run.scored(float(score))}

    end_step(runtime, frame, outcome, None)
