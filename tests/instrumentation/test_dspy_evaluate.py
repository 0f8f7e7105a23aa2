"""`dspy.Evaluate` as a user reads it: the run's score, size, metric and errors on its span, one `example {i}` span
per example holding the program's spans, and the metric's span (with an LM judge's calls) inside that example."""

from __future__ import annotations

import json
import os

import dspy
import pytest
from dspy.evaluate import SemanticF1
from dspy_release import DEFAULT_ENGINE, needs_dspy
from opentelemetry.trace import StatusCode

import lmscope
from lmscope.telemetry import _semconv as semconv


class Answerer(dspy.Module):
    """A one-step program that fails, like a user's program can, on a question it cannot handle."""

    def __init__(self, field="answer"):
        super().__init__()
        self.answer = dspy.Predict(f"question -> {field}")

    def forward(self, question):
        if question.startswith("boom"):
            raise RuntimeError("the program failed")
        return self.answer(question=question)


def children_of(finished, span):
    return sorted((s for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id),
                  key=lambda s: s.name)


def only(finished, name):
    (span,) = [s for s in finished if s.name == name]
    return span


def test_score_examples_metric_values_and_errors(spans, make_lm, lm_server, unique):
    dspy.configure(lm=make_lm())
    # The metric gives each question the value it names; "raise" makes the metric fail, "boom" the program.
    values = {"one": 1.0, "half": 0.5, "yes": True, "raise": None, "boom": None}

    def graded(example, prediction, trace=None):
        value = values[example.question.split()[0]]
        if value is None:
            raise ValueError("the metric failed")
        return value

    devset = [dspy.Example(question=f"{key} {unique}").with_inputs("question") for key in values]
    requests_before = lm_server.requests
    result = dspy.Evaluate(devset=devset, metric=graded, num_threads=2, display_progress=False)(Answerer())

    finished = spans()
    evaluate = only(finished, "evaluate")
    assert result.score == 50.0  # (1.0 + 0.5 + True + 0 + 0) / 5, failures scoring Evaluate's failure_score 0.0
    assert evaluate.attributes[semconv.EVALUATE_SCORE] == result.score
    assert evaluate.attributes[semconv.EVALUATION_EXAMPLES] == 5
    assert evaluate.attributes[semconv.EVALUATION_METRIC] == "graded"
    assert evaluate.attributes[semconv.EVALUATION_ERRORS] == 2
    assert evaluate.attributes[semconv.PHASE] == "evaluate"
    assert evaluate.status.status_code is not StatusCode.ERROR  # Evaluate itself returned

    examples = children_of(finished, evaluate)
    assert [s.name for s in examples] == [f"example {i}" for i in range(5)]
    by_index = {s.attributes[semconv.EVALUATION_EXAMPLE_INDEX]: s for s in examples}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    for index, span in by_index.items():
        assert span.attributes[semconv.BATCH_INDEX] == index
    # The values exactly as the metric returned them: floats stay floats, a bool stays a bool.
    recorded = {i: by_index[i].attributes.get(semconv.EVALUATION_METRIC_VALUE) for i in range(5)}
    assert recorded == {0: 1.0, 1: 0.5, 2: True, 3: None, 4: None}
    assert type(recorded[2]) is bool and type(recorded[1]) is float
    for index in (0, 1, 2):
        assert by_index[index].status.status_code is StatusCode.UNSET
        assert [s.name for s in children_of(finished, by_index[index])] == ["answerer", "metric graded"]
        metric = only(children_of(finished, by_index[index]), "metric graded")
        assert metric.attributes[semconv.EVALUATION_METRIC_VALUE] == recorded[index]
        assert metric.attributes[semconv.SPAN_KIND] == semconv.KIND_EVALUATOR
    # The metric raised: the example and its metric span failed with the metric's error.
    assert by_index[3].status.status_code is StatusCode.ERROR
    assert by_index[3].attributes[semconv.ERROR_TYPE] == "ValueError"
    failed_metric = only(children_of(finished, by_index[3]), "metric graded")
    assert failed_metric.attributes[semconv.ERROR_TYPE] == "ValueError"
    # The program raised: the metric never ran.
    assert by_index[4].status.status_code is StatusCode.ERROR
    assert by_index[4].attributes[semconv.ERROR_TYPE] == "RuntimeError"
    assert [s.name for s in children_of(finished, by_index[4])] == ["answerer"]
    # Each failed span records the traceback the run got, without a frame of lmscope's wrappers.
    package = f'"{os.path.dirname(lmscope.__file__)}{os.sep}'
    for span in (by_index[3], failed_metric, by_index[4]):
        assert package not in span.events[0].attributes["exception.stacktrace"], span.name

    # Every LM call the run made is under its example's program span; the roll-ups add up to what was billed.
    lm_spans = [s for s in finished if s.name.startswith(semconv.LM_SPAN_NAME_PREFIX)]
    assert len(lm_spans) == lm_server.requests - requests_before == 4
    assert evaluate.attributes[semconv.LM_CALLS] == 4
    assert evaluate.attributes[semconv.COST_TOTAL_USD] == pytest.approx(
        sum(s.attributes[semconv.LLM_COST_TOTAL] for s in lm_spans), abs=1e-12)
    assert evaluate.attributes[semconv.USAGE_INPUT_TOKENS] == sum(
        s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in lm_spans)
    assert {s.attributes[semconv.PHASE] for s in finished} == {"evaluate"}
    assert len({s.context.trace_id for s in finished}) == 1


def test_lm_judge_nests_under_the_metric_span_of_its_example(spans, make_lm, lm_server, unique):
    dspy.configure(lm=make_lm())
    devset = [dspy.Example(question=f"Question {i} {unique}", response=f"Reference {i}").with_inputs("question")
              for i in range(2)]
    judge = SemanticF1()
    requests_before = lm_server.requests
    result = dspy.Evaluate(devset=devset, num_threads=2, display_progress=False)(Answerer("response"), judge)

    finished = spans()
    evaluate = only(finished, "evaluate")
    assert evaluate.attributes[semconv.EVALUATE_SCORE] == result.score == 50.0  # the stand-in judges 0.5 / 0.5
    assert evaluate.attributes[semconv.EVALUATION_METRIC] == "SemanticF1"
    assert evaluate.attributes[semconv.EVALUATION_ERRORS] == 0
    lm_spans = [s for s in finished if s.name.startswith(semconv.LM_SPAN_NAME_PREFIX)]
    assert len(lm_spans) == lm_server.requests - requests_before == 4  # 2 answers, 2 judgements
    judged = 0
    for example in children_of(finished, evaluate):
        program, metric = children_of(finished, example)
        assert (program.name, metric.name) == ("answerer", "metric SemanticF1")
        assert metric.attributes[semconv.EVALUATION_METRIC_VALUE] == 0.5
        assert example.attributes[semconv.EVALUATION_METRIC_VALUE] == 0.5
        # The judge's module and its LM call are inside this example's metric span, not beside the program.
        (judge_span,) = children_of(finished, metric)
        assert judge_span.name == "semantic_f1"
        judge_calls = [s for s in lm_spans if _ancestor(finished, s, metric)]
        program_calls = [s for s in lm_spans if _ancestor(finished, s, program)]
        assert len(judge_calls) == len(program_calls) == 1
        assert metric.attributes[semconv.LM_CALLS] == 1
        assert metric.attributes[semconv.COST_TOTAL_USD] == judge_calls[0].attributes[semconv.LLM_COST_TOTAL]
        judged += 1
    assert judged == 2
    assert {s.attributes[semconv.PHASE] for s in finished} == {"evaluate"}


def _ancestor(finished, span, ancestor):
    by_id = {s.context.span_id: s for s in finished}
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        if span is ancestor:
            return True
    return False


@pytest.mark.parametrize("engine", [DEFAULT_ENGINE])
@pytest.mark.parametrize("how", ["constructor", "positional", "keyword"])
def test_the_metric_and_what_evaluate_writes_are_unchanged(spans, make_lm, unique, tmp_path, how):
    """The user's metric gets Evaluate's own arguments and stays the object it was; the JSON column keeps its name."""
    dspy.configure(lm=make_lm())
    seen = []

    def exact(example, prediction, trace=None):
        seen.append((example, prediction, trace))
        return 1

    devset = [dspy.Example(question=f"Question {unique}").with_inputs("question")]
    evaluate = dspy.Evaluate(devset=devset, metric=exact if how == "constructor" else None, display_progress=False)
    program, path = Answerer(), tmp_path / "results.json"
    if how == "positional":
        result = evaluate(program, exact, save_as_json=str(path))
    else:
        result = evaluate(program, **({"metric": exact} if how == "keyword" else {}), save_as_json=str(path))

    assert evaluate.metric is (exact if how == "constructor" else None)
    ((example, prediction, trace),) = seen
    assert example is devset[0] and trace is None and prediction is result.results[0][1]
    assert json.loads(path.read_text())[0]["exact"] == 1
    assert only(spans(), "example 0").attributes[semconv.EVALUATION_METRIC_VALUE] == 1


def test_metrics_carry_the_evaluate_phase_and_no_example_label(metered, metric_series, make_lm, unique):
    """Example and metric spans are not modules: no `example 3` label (it would grow with the devset) on any series."""
    spans, reader = metered
    dspy.configure(lm=make_lm())
    devset = [dspy.Example(question=f"Question {i} {unique}").with_inputs("question") for i in range(3)]
    dspy.Evaluate(devset=devset, metric=lambda example, prediction, trace=None: 1.0, num_threads=2,
                  display_progress=False)(Answerer())

    series = metric_series(reader)
    module_paths = {dict(labels)[semconv.MODULE_PATH] for labels in series["lmscope.module.duration"]}
    assert module_paths == {"evaluate", "answerer", "answerer.answer"}  # the run itself, and the program
    for points in series.values():
        assert {dict(labels)[semconv.PHASE] for labels in points} == {"evaluate"}
    examples = [s for s in spans() if s.name.startswith("example ")]
    assert len(examples) == 3 and all(semconv.MODULE_PATH not in s.attributes for s in examples)


def test_the_score_gauge_holds_each_metrics_latest_score(metered, metric_series, make_lm, unique):
    """`lmscope.evaluation.score` (what the dashboards draw): per metric name and phase, the score the latest run
    returned; a second run of the same metric replaces it, another metric is a series of its own."""
    _spans, reader = metered
    dspy.configure(lm=make_lm())
    devset = [dspy.Example(question=f"Question {i} {unique}").with_inputs("question") for i in range(4)]

    def halves(example, prediction, trace=None):
        return int(example.question.split()[1]) % 2 == 0

    def everything(example, prediction, trace=None):
        return 1.0

    evaluate = dspy.Evaluate(devset=devset, metric=halves, num_threads=2, display_progress=False)
    first = evaluate(Answerer())
    assert first.score == 50.0
    assert metric_series(reader)[semconv.METRIC_EVALUATION_SCORE] == {
        frozenset({(semconv.EVALUATION_METRIC, "halves"), (semconv.PHASE, "evaluate")}): 50.0}
    later = evaluate(Answerer(), metric=everything, devset=devset[:3])  # the call's metric, not the evaluator's
    again = evaluate(Answerer(), devset=devset[:1])  # halves again: question 0 is even
    assert (later.score, again.score) == (100.0, 100.0)
    assert metric_series(reader)[semconv.METRIC_EVALUATION_SCORE] == {
        frozenset({(semconv.EVALUATION_METRIC, "halves"), (semconv.PHASE, "evaluate")}): 100.0,
        frozenset({(semconv.EVALUATION_METRIC, "everything"), (semconv.PHASE, "evaluate")}): 100.0}


@pytest.mark.parametrize("engine", [DEFAULT_ENGINE])
@needs_dspy((3, 4), "an Evaluate that survives every example failing (earlier ones divide by zero)")
def test_a_run_evaluate_gives_up_on_fails_with_its_own_exception(spans, make_lm, unique):
    """`max_errors` reached: DSPy cancels the rest and raises; the span says so and counts the examples that ran."""
    dspy.configure(lm=make_lm())
    devset = [dspy.Example(question=f"boom {i} {unique}").with_inputs("question") for i in range(3)]
    evaluate = dspy.Evaluate(devset=devset, metric=lambda example, prediction, trace=None: 1.0, num_threads=1,
                             max_errors=1, display_progress=False)
    with pytest.raises(Exception, match=r"^Execution cancelled due to errors or interruption\.$") as raised:
        evaluate(Answerer())
    assert type(raised.value) is Exception

    finished = spans()
    evaluate_span = only(finished, "evaluate")
    assert evaluate_span.status.status_code is StatusCode.ERROR
    assert evaluate_span.attributes[semconv.EVALUATION_ERRORS] == 1
    assert semconv.EVALUATE_SCORE not in evaluate_span.attributes
    (example,) = children_of(finished, evaluate_span)
    assert example.name == "example 0" and example.attributes[semconv.ERROR_TYPE] == "RuntimeError"
    # Nor does an empty devset change: DSPy's own ValueError, on the span too.
    with pytest.raises(ValueError, match="devset must contain at least one example"):
        dspy.Evaluate(devset=[], metric=lambda example, prediction, trace=None: 1.0)(Answerer())
    assert [s.attributes[semconv.ERROR_TYPE] for s in spans() if s.name == "evaluate"][-1] == "ValueError"


class DevsetOfRows:
    """A devset read from a source with a row count: each pass makes new Examples, as a cursor would; `reads` counts
    the passes."""

    def __init__(self, questions):
        self.questions, self.reads = questions, 0

    def __len__(self):
        return len(self.questions)

    def __iter__(self):
        self.reads += 1
        for question in self.questions:
            yield dspy.Example(question=question, answer="Paris").with_inputs("question")


@pytest.mark.parametrize("num_threads", [1, 2])
def test_a_devset_is_read_as_often_as_without_lmscope_and_each_example_keeps_its_place(make_lm, unique, num_threads):
    from memory_spans import memory_provider

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    questions = [f"capital of France {unique} {i}" for i in range(8)]  # more than a freed item's id takes to reuse
    dspy.configure(lm=make_lm())

    def run_evaluate():
        devset = DevsetOfRows(questions)
        dspy.Evaluate(devset=devset, metric=lambda example, prediction, trace=None: 1.0, num_threads=num_threads,
                      display_progress=False)(Answerer())
        return devset.reads

    untraced_reads = run_evaluate()
    provider, exporter = memory_provider()
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        assert run_evaluate() == untraced_reads  # lmscope used to read the rows once more, before DSPy
    finally:
        instrumentor.uninstrument()
        dspy.configure(lm=None)
    finished = exporter.get_finished_spans()
    examples = {s.name: s for s in finished if s.name.startswith("example ")}
    assert sorted(examples) == [f"example {i}" for i in range(8)]  # all were "example -1"
    for index, question in enumerate(questions):
        [predict] = [s for s in finished if s.name == "answerer.answer" and question in s.attributes[semconv.INPUT_VALUE]]
        [answerer] = [s for s in finished if s.context.span_id == predict.parent.span_id]
        assert answerer.parent.span_id == examples[f"example {index}"].context.span_id


@pytest.mark.parametrize("num_threads", [1, 2])
def test_an_example_there_twice_is_an_example_span_at_each_place(spans, make_lm, unique, num_threads):
    """`devset * 2` runs each Example twice: each run has the position DSPy read it at, though it may run before DSPy
    has read its second place."""
    examples = [dspy.Example(question=f"capital of France {unique} {i}", answer="Paris").with_inputs("question")
                for i in range(3)]
    dspy.configure(lm=make_lm())
    dspy.Evaluate(devset=examples * 2, metric=lambda example, prediction, trace=None: 1.0, num_threads=num_threads,
                  display_progress=False)(Answerer())
    finished = spans()
    by_example = {}
    for example in (s for s in finished if s.name.startswith("example ")):
        [answerer] = [s for s in finished if s.parent is not None and s.parent.span_id == example.context.span_id
                      and s.name == "answerer"]
        by_example[example.name] = json.loads(answerer.attributes[semconv.INPUT_VALUE])["question"]
    assert by_example == {f"example {i}": examples[i % 3].question for i in range(6)}
