"""`Teleprompter.compile` traced as one trace: real DSPy optimizers against the stand-in LM server, small budgets.

The program's answer names the answers of its demos, so candidates with other demos score differently, and the
metric's verdicts are known from the examples alone. The LM has no cache: each LM span is one request the server
answered, and the compile's root must count every one of them.
"""

from __future__ import annotations

import json

import pytest
from dspy_release import needs_dspy

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_file import records_from_spans

QUESTIONS = [("What is Paris?", "paris"), ("Who wrote Hamlet?", "shakespeare"), ("Where is Tokyo?", "tokyo"),
             ("What is jazz?", "music"), ("Name the color blue", "blue"), ("Is 2 even?", "odd")]


def _program_class():
    import dspy

    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.Predict("question -> answer")

        def forward(self, question):
            # The stand-in repeats the question in its answer: the demos' answers make a candidate's score.
            hint = ", ".join(str(demo["answer"]) for demo in self.answer.demos)
            question = f"{question} (like {hint})" if hint else question
            # ... and so does its instruction, which GEPA rewrites (the default names no answer).
            return self.answer(question=f"{question} [{self.answer.signature.instructions}]")

    return QA


def exact(example, prediction, trace=None):
    return example.answer in prediction.answer.lower()


def _examples():
    import dspy

    return [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in QUESTIONS]


@pytest.fixture
def lm(lm_server):
    import dspy

    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-test-SECRET-123", cache=False)
    dspy.configure(lm=lm)
    return lm


def _one_trace(finished, lm_server, requests_before):
    """The compile's spans: one trace, one root, every LM call a request the server answered, all `optimize`."""
    roots = [span for span in finished if span.parent is None]
    assert len(roots) == 1, [span.name for span in roots]
    root = roots[0]
    assert {span.context.trace_id for span in finished} == {root.context.trace_id}
    assert {span.attributes[semconv.PHASE] for span in finished} == {semconv.PHASE_OPTIMIZE}
    lm_spans = [span for span in finished if span.name.startswith(semconv.LM_SPAN_NAME_PREFIX)]
    requests = lm_server.requests - requests_before
    assert len(lm_spans) == requests > 0
    assert root.attributes[semconv.LM_CALLS] == requests
    for rolled, per_call in ((semconv.USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_INPUT_TOKENS),
                             (semconv.USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS)):
        assert root.attributes[rolled] == sum(span.attributes[per_call] for span in lm_spans) > 0
    assert root.attributes[semconv.COST_TOTAL_USD] == pytest.approx(
        sum(span.attributes[semconv.GEN_AI_USAGE_COST] for span in lm_spans), abs=1e-12)
    assert root.attributes[semconv.CACHE_HITS] == 0
    return root


def _by_id(finished):
    return {span.context.span_id: span for span in finished}


def _parent(span, finished):
    return _by_id(finished)[span.parent.span_id]


def _optimizer_attributes(span):
    return {key: value for key, value in span.attributes.items() if key.startswith("lmscope.optimizer.")}


def _demos(program):
    return json.dumps({name: len(predictor.demos) for name, predictor in program.named_predictors()}, sort_keys=True)


def test_bootstrap_fewshot_is_one_trace_with_a_span_per_example_tried(spans, lm, lm_server):
    import dspy

    trainset = _examples()
    before = lm_server.requests
    optimizer = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1)
    program = optimizer.compile(_program_class()(), teacher=_program_class()(), trainset=trainset)
    finished = spans()
    root = _one_trace(finished, lm_server, before)

    assert root.name == "optimize BootstrapFewShot"
    assert _optimizer_attributes(root) == {
        semconv.OPTIMIZER_NAME: "BootstrapFewShot", semconv.OPTIMIZER_TRAINSET_SIZE: 6,
        semconv.OPTIMIZER_METRIC: "exact", semconv.OPTIMIZER_STUDENT: "QA", semconv.OPTIMIZER_TEACHER: "QA",
        semconv.OPTIMIZER_PARAMS_PREFIX + "max_bootstrapped_demos": 2,
        semconv.OPTIMIZER_PARAMS_PREFIX + "max_labeled_demos": 1, semconv.OPTIMIZER_PARAMS_PREFIX + "max_rounds": 1,
        semconv.OPTIMIZER_DEMOS: _demos(program)}
    # The teacher is labelled first: a nested compile, under the root.
    labeled = [span for span in finished if span.name == "optimize LabeledFewShot"]
    assert len(labeled) == 1 and _parent(labeled[0], finished) is root

    attempts = sorted((span for span in finished if span.name.startswith("bootstrap ")),
                      key=lambda span: span.start_time)
    accepted = 0
    for span in attempts:
        index = span.attributes[semconv.OPTIMIZER_EXAMPLE_INDEX]
        assert span.name == f"bootstrap {index}" and _parent(span, finished) is root
        assert span.attributes[semconv.OPTIMIZER_DEMO_ACCEPTED] is span.attributes[semconv.OPTIMIZER_METRIC_PASSED]
        accepted += span.attributes[semconv.OPTIMIZER_DEMO_ACCEPTED]
        # The teacher's call of the example, with its LM call, inside the attempt; the program keeps its path.
        children = [child for child in finished if child.parent and child.parent.span_id == span.context.span_id]
        assert [child.name for child in children] == ["qa"]
    # BootstrapFewShot stops once it has its demos: the examples it tried, in order.
    assert [span.attributes[semconv.OPTIMIZER_EXAMPLE_INDEX] for span in attempts] == list(range(len(attempts)))
    assert accepted == 2 == len(program.answer.demos) - sum(not d.get("augmented") for d in program.answer.demos)
    assert [span.attributes[semconv.OPTIMIZER_METRIC_PASSED] for span in attempts][:2] == [True, False]


def test_random_search_trials_carry_the_scores_it_recorded(spans, lm, lm_server):
    import dspy

    trainset = _examples()
    before = lm_server.requests
    optimizer = dspy.BootstrapFewShotWithRandomSearch(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1,
                                                      num_candidate_programs=2, num_threads=2)
    program = optimizer.compile(_program_class()(), trainset=trainset[:4], valset=trainset[2:])
    finished = spans()
    root = _one_trace(finished, lm_server, before)

    recorded = {str(candidate["seed"]): candidate["score"] for candidate in program.candidate_programs}
    trials = sorted((span for span in finished if span.name.startswith("trial ")),
                    key=lambda span: span.attributes[semconv.OPTIMIZER_TRIAL])
    assert [span.name for span in trials] == [f"trial {index}" for index in range(5)]
    assert [span.attributes[semconv.OPTIMIZER_CANDIDATE] for span in trials] == ["-3", "-2", "-1", "0", "1"]
    assert {span.attributes[semconv.OPTIMIZER_CANDIDATE]: span.attributes[semconv.OPTIMIZER_SCORE]
            for span in trials} == recorded
    assert len(set(recorded.values())) > 1  # the demos changed the scores: best_so_far is tested for real
    best = None
    for span in trials:
        score = span.attributes[semconv.OPTIMIZER_SCORE]
        assert span.attributes[semconv.OPTIMIZER_BEST_SO_FAR] is (best is None or score > best)
        best = score if best is None or score > best else best
        # Its Evaluate, with the evaluation's threads, inside the trial.
        evaluations = [child for child in finished if child.parent and child.parent.span_id == span.context.span_id]
        assert [child.name for child in evaluations] == ["evaluate"]
        assert evaluations[0].attributes[semconv.EVALUATE_SCORE] == span.attributes[semconv.OPTIMIZER_SCORE]
    assert root.attributes[semconv.OPTIMIZER_BEST_SCORE] == best == max(recorded.values())
    assert root.attributes[semconv.OPTIMIZER_DEMOS] == _demos(program)
    assert root.attributes[semconv.OPTIMIZER_VALSET_SIZE] == 4
    assert root.attributes[semconv.OPTIMIZER_PARAMS_PREFIX + "num_candidate_sets"] == 2
    # Each candidate's BootstrapFewShot nests under the root, its LabeledFewShot under it.
    nested = [span for span in finished if span.name == "optimize BootstrapFewShot"]
    assert len(nested) == 3 and all(_parent(span, finished) is root for span in nested)

    # What `lmscope report` says of this compile, read from the same spans: its trials in order, the best score, and
    # the spend of every LM call below it, to the cent; all of it spent optimizing.
    report = summarize(records_from_spans(finished))
    summary = next(entry for entry in report.compiles if entry.optimizer == "BootstrapFewShotWithRandomSearch")
    assert summary.trials == [(span.attributes[semconv.OPTIMIZER_TRIAL], span.attributes[semconv.OPTIMIZER_SCORE])
                              for span in trials]
    assert summary.best_score == best
    assert summary.spend.calls == root.attributes[semconv.LM_CALLS] == report.total.calls
    assert summary.spend.cost_usd == pytest.approx(root.attributes[semconv.COST_TOTAL_USD], abs=1e-12)
    assert set(report.by_phase) == {semconv.PHASE_OPTIMIZE}
    assert report.by_phase[semconv.PHASE_OPTIMIZE].cost_usd == pytest.approx(summary.spend.cost_usd, abs=1e-12)
    assert [entry.phase for entry in report.evaluations] == [semconv.PHASE_OPTIMIZE] * len(trials)


def _mipro(seed=0):
    import dspy

    return dspy.MIPROv2(metric=exact, auto=None, num_candidates=2, max_bootstrapped_demos=1, max_labeled_demos=1,
                        num_threads=2, seed=seed, verbose=False)


def _mipro_compile(optimizer):
    trainset = _examples()
    return optimizer.compile(_program_class()(), trainset=trainset, valset=trainset[:4], num_trials=2,
                             minibatch=False)


def test_mipro_trials_match_its_trial_logs(spans, lm, lm_server):
    before = lm_server.requests
    program = _mipro_compile(_mipro())
    finished = spans()
    root = _one_trace(finished, lm_server, before)

    assert root.name == "optimize MIPROv2"
    assert root.attributes[semconv.OPTIMIZER_PARAMS_PREFIX + "num_candidates"] == 2
    assert root.attributes[semconv.OPTIMIZER_PARAMS_PREFIX + "seed"] == 0
    assert root.attributes[semconv.OPTIMIZER_BEST_SCORE] == program.score
    trials = sorted((span for span in finished if span.name.startswith("trial ")),
                    key=lambda span: span.attributes[semconv.OPTIMIZER_TRIAL])
    logs = program.trial_logs  # MIPROv2 numbers its trials from 1
    assert [span.attributes[semconv.OPTIMIZER_TRIAL] + 1 for span in trials] == sorted(logs)
    best = None
    for span in trials:
        log = logs[span.attributes[semconv.OPTIMIZER_TRIAL] + 1]
        assert span.attributes[semconv.OPTIMIZER_SCORE] == log["full_eval_score"]
        chosen = {key: value for key, value in log.items() if key.endswith(("_instruction", "_demos"))}
        assert span.attributes[semconv.OPTIMIZER_CANDIDATE] == (json.dumps(chosen, sort_keys=True) if chosen
                                                                else "default")
        score = span.attributes[semconv.OPTIMIZER_SCORE]
        assert span.attributes[semconv.OPTIMIZER_BEST_SO_FAR] is (best is None or score > best)
        best = score if best is None or score > best else best
    assert best == program.score

    # One proposal per instruction candidate, the instruction a trial then tried among them (captured content).
    proposals = sorted((span for span in finished if span.name.startswith("propose ")), key=lambda s: s.start_time)
    assert [span.name for span in proposals] == ["propose answer", "propose answer"]
    assert all(span.attributes[semconv.OPTIMIZER_PREDICTOR] == "answer" and _parent(span, finished) is root
               for span in proposals)
    tried = {log["0_predictor_instruction"]: log["full_eval_program"].answer.signature.instructions
             for log in logs.values() if log.get("0_predictor_instruction", 0) > 0}
    assert tried  # MIPROv2 replaces the first proposal by the original instruction: only later ones are tried
    for index, instruction in tried.items():
        assert proposals[index].attributes[semconv.OPTIMIZER_INSTRUCTION] == instruction


def _feedback(gold, prediction, trace=None, pred_name=None, pred_trace=None):
    import dspy

    return dspy.Prediction(score=float(exact(gold, prediction)), feedback="Name the answer.")


def _gepa():
    import dspy

    return dspy.GEPA(metric=_feedback, max_metric_calls=12, reflection_lm=dspy.settings.lm, num_threads=2,
                     track_stats=True, seed=0)


def _gepa_compile(optimizer):
    trainset = _examples()
    return optimizer.compile(_program_class()(), trainset=trainset[:3], valset=trainset[3:])


@pytest.fixture
def helpful_reflection(lm_server, monkeypatch):
    """The instruction GEPA's proposer asks the reflection LM for: one that helps on the train and val sets."""
    monkeypatch.setitem(lm_server.model_answers, "new_instruction", "Answer shakespeare, music or blue.")


@pytest.mark.usefixtures("helpful_reflection")
@needs_dspy((3, 4), "the GEPA release whose search this test drives (older GEPA keeps only the seed program here)")
def test_gepa_is_one_trace_with_its_best_score(spans, lm, lm_server):
    before = lm_server.requests
    program = _gepa_compile(_gepa())
    finished = spans()
    root = _one_trace(finished, lm_server, before)

    results = program.detailed_results
    assert root.attributes[semconv.OPTIMIZER_BEST_SCORE] == results.val_aggregate_scores[results.best_idx]
    # A trial per candidate GEPA kept, the seed program first, scored as GEPA recorded it.
    trials = sorted((span for span in finished if span.name.startswith("trial ")),
                    key=lambda span: span.attributes[semconv.OPTIMIZER_TRIAL])
    assert [span.attributes[semconv.OPTIMIZER_CANDIDATE] for span in trials] == [
        str(index) for index in range(len(results.candidates))]
    assert [span.attributes[semconv.OPTIMIZER_SCORE] for span in trials] == results.val_aggregate_scores
    assert len(trials) > 1 and all(_parent(span, finished) is root for span in trials)
    scores = results.val_aggregate_scores
    assert [span.attributes[semconv.OPTIMIZER_BEST_SO_FAR] for span in trials] == [
        index == 0 or score > max(scores[:index]) for index, score in enumerate(scores)]
    assert True in [span.attributes[semconv.OPTIMIZER_BEST_SO_FAR] for span in trials[1:]]
    assert root.attributes[semconv.OPTIMIZER_METRIC] == "_feedback"
    assert root.attributes[semconv.OPTIMIZER_PARAMS_PREFIX + "max_metric_calls"] == 12


def test_a_teleprompter_defined_after_instrumenting_is_traced_and_nests(spans, lm, lm_server):
    import dspy
    from dspy.teleprompt import Teleprompter

    class TwoStep(Teleprompter):
        """A user's optimizer: labels, then bootstraps with a subclass whose compile calls super()."""

        def __init__(self, api_key):
            self.api_key = api_key
            self.rounds = 1
            self.metric = exact

        def compile(self, student, *, trainset):
            labeled = dspy.LabeledFewShot(k=1).compile(student, trainset=trainset)
            return Strict(metric=self.metric, max_bootstrapped_demos=1, max_labeled_demos=0).compile(
                labeled.reset_copy(), trainset=trainset)

    class Strict(dspy.BootstrapFewShot):
        def compile(self, student, *, trainset):
            return super().compile(student, trainset=trainset)

    before = lm_server.requests
    program = TwoStep(api_key="sk-user-SECRET").compile(_program_class()(), trainset=_examples())
    finished = spans()
    root = _one_trace(finished, lm_server, before)

    assert _optimizer_attributes(root) == {
        semconv.OPTIMIZER_NAME: "TwoStep", semconv.OPTIMIZER_TRAINSET_SIZE: 6, semconv.OPTIMIZER_METRIC: "exact",
        semconv.OPTIMIZER_STUDENT: "QA", semconv.OPTIMIZER_PARAMS_PREFIX + "rounds": 1,
        semconv.OPTIMIZER_DEMOS: _demos(program)}
    assert "sk-user-SECRET" not in repr([dict(span.attributes) for span in finished])
    compiles = [span for span in finished if span.name.startswith(semconv.OPTIMIZE_SPAN_NAME_PREFIX)]
    # Strict's super().compile is the same optimizer compiling: no second span for it.
    assert sorted(span.name for span in compiles) == ["optimize LabeledFewShot", "optimize Strict", "optimize TwoStep"]
    assert all(_parent(span, finished) is root for span in compiles if span is not root)
    strict = next(span for span in compiles if span.name == "optimize Strict")
    attempts = [span for span in finished if span.name.startswith("bootstrap ")]
    assert attempts and all(_parent(span, finished) is strict for span in attempts)


def test_compiled_program_spans_say_demos_before_and_after_save_and_load(spans, lm, tmp_path):
    import dspy

    program = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1).compile(
        _program_class()(), trainset=_examples())
    demos = len(program.answer.demos)
    assert demos > 0
    path = tmp_path / "program.json"
    program.save(str(path))
    loaded = _program_class()()
    loaded.load(str(path))
    fresh = _program_class()()

    for each in (program, loaded, fresh):
        before = len(spans())
        each(question="What is Paris?")
        called = {span.name: span.attributes for span in spans()[before:]}
        assert set(called) == {"qa", "qa.answer", "chat gpt-4o-mini"}  # the same paths, compiled or not
        answer = called["qa.answer"]
        if each is fresh:
            assert semconv.MODULE_DEMOS not in answer and semconv.MODULE_COMPILED not in answer
            assert semconv.MODULE_COMPILED not in called["qa"]
        else:
            assert answer[semconv.MODULE_DEMOS] == demos and answer[semconv.MODULE_COMPILED] is True
            assert answer[semconv.PHASE] == semconv.PHASE_SERVE
        # DSPy does not save its `_compiled` flag: the loaded program is compiled because `load` gave it demos.
        assert called["qa"].get(semconv.MODULE_COMPILED) is (None if each is fresh else True)


def _search(program):
    """What the optimizer tried and scored, as it kept it: candidates' seeds and scores, MIPROv2's trial choices,
    GEPA's candidates' scores."""
    if hasattr(program, "detailed_results"):
        return list(enumerate(program.detailed_results.val_aggregate_scores)), {}
    candidates = [(candidate.get("seed"), candidate["score"]) for candidate in program.candidate_programs]
    logs = {number: {key: value for key, value in log.items() if type(value) in (int, float)}
            for number, log in getattr(program, "trial_logs", {}).items()}
    return candidates, logs


@pytest.mark.parametrize("make, run", [
    pytest.param(lambda: __import__("dspy").BootstrapFewShotWithRandomSearch(
        metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1, num_candidate_programs=2, num_threads=2),
        lambda optimizer: optimizer.compile(_program_class()(), trainset=_examples()[:4], valset=_examples()[2:]),
        id="random search", marks=needs_dspy((3, 4), "seeding that scores this test's candidates apart (all alike before, "
                                             "so an equal outcome would prove nothing)")),
    pytest.param(_mipro, _mipro_compile, id="MIPROv2"),
    pytest.param(_gepa, _gepa_compile, id="GEPA", marks=needs_dspy((3, 4), "the GEPA release whose search this test drives (older GEPA keeps only the seed program here)")),
])
@pytest.mark.usefixtures("helpful_reflection")
def test_tracing_changes_no_compiled_program(lm, make, run):
    from opentelemetry.sdk.trace import TracerProvider

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    instrumentor = DSPyInstrumentor()
    plain = run(make())
    instrumentor.instrument(TracerProvider().get_tracer("test"))
    try:
        traced = run(make())
    finally:
        instrumentor.uninstrument()
    assert traced.dump_state() == plain.dump_state()
    assert _search(traced) == _search(plain)
    assert len({score for _, score in _search(plain)[0]}) > 1  # candidates scored apart: the choice was real


def test_uninstrument_puts_back_every_compile(lm):
    from dspy.teleprompt import Teleprompter

    from lmscope.instrumentation._patching import subclasses
    from lmscope.instrumentation.dspy import DSPyInstrumentor

    def compiles():
        return {cls: vars(cls)["compile"] for cls in (Teleprompter, *subclasses(Teleprompter))
                if "compile" in vars(cls)}

    class Earlier(Teleprompter):  # a user's optimizer defined before lmscope is set up
        def compile(self, student, *, trainset):
            return student

    found, hook = compiles(), vars(Teleprompter).get("__init_subclass__")  # none before DSPy 3.3
    assert Earlier in found
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument()

    class Later(Teleprompter):
        def compile(self, student, *, trainset):
            return student

    wrapped = compiles()
    assert all(wrapped[cls] is not found[cls] for cls in found) and Later in wrapped
    instrumentor.uninstrument()
    after = compiles()
    assert {cls: after[cls] for cls in found} == found and vars(Teleprompter).get("__init_subclass__") is hook
    # Later's compile is back to what DSPy made of the class body's function: its own callback wrapper from DSPy 3.3
    # on, the function itself before (lmscope's wrappers keep no `__wrapped__`).
    assert after[Later] is not wrapped[Later]
    assert getattr(after[Later], "__wrapped__", after[Later]).__qualname__.endswith("Later.compile")


def test_work_on_avatar_optimizers_thread_pool_stays_in_the_compile(spans, lm, lm_server):
    """AvatarOptimizer evaluates on a bare `ThreadPoolExecutor` from its module: that pool's tasks join the compile's
    trace, and see DSPy's settings exactly as without lmscope (DSPy carries none of its overrides there)."""
    import dspy
    from dspy.teleprompt import Teleprompter, avatar_optimizer

    seen = []

    class Pooled(Teleprompter):
        def compile(self, student, *, trainset):
            with dspy.context(num_threads=3), avatar_optimizer.ThreadPoolExecutor(max_workers=2) as pool:
                def run(example):
                    seen.append(dspy.settings.num_threads)
                    return student(**example.inputs())

                list(pool.map(run, trainset[:2]))
                futures = [pool.submit(run, example) for example in trainset[2:4]]
                [future.result() for future in futures]
            return student

    plain_num_threads = dspy.settings.num_threads
    before = lm_server.requests
    Pooled().compile(_program_class()(), trainset=_examples())
    root = _one_trace(spans(), lm_server, before)
    assert root.name == "optimize Pooled"
    assert [span.name for span in spans() if _parent_id(span) == root.context.span_id] == ["qa"] * 4
    assert seen == [plain_num_threads] * 4


def _parent_id(span):
    return span.parent.span_id if span.parent is not None else None


def test_optimizer_string_params_are_scrubbed_and_cut_like_settings(spans, lm):
    """An optimizer's string settings are recorded whatever `capture_content` says: a credential shape in one is
    redacted (and the span says so), a long one is cut with the marker, as every other value lmscope stores."""
    from dspy.teleprompt import Teleprompter

    key = "sk-proj-" + "A1b2C3d4" * 5

    class Tuned(Teleprompter):
        def __init__(self):
            super().__init__()
            self.prompt_model = "openai/gpt-4o-mini"
            self.note = f"use {key} with Bearer abcdefghijklmnopqrstuvwxyz012345"
            self.endpoint = "postgres://admin:hunter2@db.internal:5432/runs"
            self.instructions = "x" * 1000

        def compile(self, student, *, trainset, **kwargs):
            return student

    Tuned().compile(_program_class()(), trainset=_examples())
    (root,) = spans()
    params = {key[len(semconv.OPTIMIZER_PARAMS_PREFIX):]: value for key, value in root.attributes.items()
              if key.startswith(semconv.OPTIMIZER_PARAMS_PREFIX)}
    assert params["prompt_model"] == "openai/gpt-4o-mini"
    assert params["note"] == "use [REDACTED] with Bearer [REDACTED]"
    assert params["endpoint"] == "postgres://[REDACTED]@db.internal:5432/runs"
    assert len(params["instructions"]) == 256 and params["instructions"].endswith("…[truncated 766 chars]")
    assert root.attributes[semconv.SCRUBBED] is True
    assert "hunter2" not in json.dumps(dict(root.attributes), default=str)


def test_a_compiles_metric_points_are_all_optimize(metered, metric_series, lm):
    import dspy

    finished, reader = metered
    dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=1, max_labeled_demos=0).compile(
        _program_class()(), trainset=_examples())
    series = metric_series(reader)
    points = [attributes for by_attributes in series.values() for attributes in by_attributes]
    assert points and all((semconv.PHASE, semconv.PHASE_OPTIMIZE) in attributes for attributes in points)
    calls = sum(span.name.startswith(semconv.LM_SPAN_NAME_PREFIX) for span in finished())
    assert calls > 0


def test_a_trial_evaluate_gives_up_on_raises_through_the_compile_without_lmscope_frames(spans, lm):
    """RandomSearch's evaluation of a candidate reaches `max_errors`: DSPy's exception leaves `compile` with the
    traceback it has untraced (the trial's wrappers take their frames out of it), and the trial span says so."""
    import os
    import traceback

    import dspy

    import lmscope

    package = os.path.dirname(lmscope.__file__) + os.sep

    def fails(example, prediction, trace=None):
        raise ValueError("the metric failed")

    optimizer = dspy.BootstrapFewShotWithRandomSearch(metric=fails, max_bootstrapped_demos=1, max_labeled_demos=1,
                                                      num_candidate_programs=1, num_threads=1, max_errors=1)
    with pytest.raises(Exception, match=r"^Execution cancelled due to errors or interruption\.$") as raised:
        optimizer.compile(_program_class()(), trainset=_examples()[:2], valset=_examples()[2:4])
    entries = traceback.extract_tb(raised.value.__traceback__)
    assert [entry.name for entry in entries if entry.filename.endswith(("random_search.py", "evaluate.py"))] == [
        "compile", "__call__"]
    assert not [entry for entry in entries if entry.filename.startswith(package)]
    (trial,) = [span for span in spans() if span.name.startswith("trial ")]
    assert trial.status.status_code.name == "ERROR"
    assert package not in trial.events[-1].attributes["exception.stacktrace"]


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("builder", ["compile_start_attributes", "compile_end_attributes"])
def test_a_fault_in_compile_tracing_changes_no_compile(spans, lm, monkeypatch, builder):
    import dspy

    from lmscope.instrumentation.dspy import _compile

    def compile_program():
        return dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1).compile(
            _program_class()(), trainset=_examples()).dump_state()

    expected = compile_program()

    def broken(*args, **kwargs):
        raise RuntimeError("lmscope bug")

    monkeypatch.setattr(_compile, builder, broken)
    assert compile_program() == expected


@pytest.mark.slow  # ~7 s: KNN's first embedding and vector search
def test_knn_fewshot_compiles_on_every_call_of_its_program(spans, lm, lm_server):
    """KNNFewShot's compile only wraps the program; each call of the result bootstraps on the nearest examples:
    that is optimizing work, under the serving call's span."""
    import dspy

    embedder = dspy.Embedder("openai/text-embedding-3-small", caching=False, api_base=lm_server.base_url,
                             api_key="sk-test-SECRET-123")
    optimizer = dspy.KNNFewShot(k=2, trainset=_examples(), vectorizer=embedder, metric=exact,
                                max_bootstrapped_demos=1, max_labeled_demos=1)
    program = optimizer.compile(_program_class()())
    compiled = spans()
    assert [span.name for span in compiled] == ["optimize KNNFewShot"]
    assert _optimizer_attributes(compiled[0])[semconv.OPTIMIZER_TRAINSET_SIZE] == 6

    program(question="What is Paris?")
    called = spans()[len(compiled):]
    roots = [span for span in called if span.parent is None]
    assert [span.name for span in roots] == ["qa"] and roots[0].attributes[semconv.PHASE] == semconv.PHASE_SERVE
    inner = next(span for span in called if span.name == "optimize BootstrapFewShot")
    assert _parent(inner, called) is roots[0]
    below = {span.context.span_id for span in called if span is inner}
    for span in sorted(called, key=lambda span: span.start_time):
        if span.parent is not None and span.parent.span_id in below:
            below.add(span.context.span_id)
            assert span.attributes[semconv.PHASE] == semconv.PHASE_OPTIMIZE
    assert len(below) > 1


def test_proposed_instructions_are_content(traced, lm):
    """Without captured content a proposal span says which predictor it was for, not what it proposed."""
    finished = traced(False)
    _mipro_compile(_mipro())
    proposals = [span for span in finished() if span.name.startswith("propose ")]
    assert [span.attributes[semconv.OPTIMIZER_PREDICTOR] for span in proposals] == ["answer", "answer"]
    assert all(semconv.OPTIMIZER_INSTRUCTION not in span.attributes for span in proposals)
