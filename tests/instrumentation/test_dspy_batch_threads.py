"""`lmscope.batch.num_threads`: the thread count a `batch`/`Parallel`/`Evaluate` run used, not the global default."""

from __future__ import annotations

import dspy

NUM_THREADS = "lmscope.batch.num_threads"


def examples(unique, n=2):
    return [dspy.Example(question=f"Question {i} {unique}").with_inputs("question") for i in range(n)]


def container(finished, name):
    (span,) = [s for s in finished if s.name == name]
    return span


def only_container_spans_carry_it(finished, name):
    assert [s.name for s in finished if NUM_THREADS in s.attributes] == [name]


def test_batch_explicit_num_threads(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    dspy.Predict("question -> answer").batch(examples(unique), num_threads=3, disable_progress_bar=True)
    finished = spans()
    assert container(finished, "predict.batch").attributes[NUM_THREADS] == 3
    only_container_spans_carry_it(finished, "predict.batch")


def test_batch_default_comes_from_dspy_context(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    with dspy.context(num_threads=2):
        dspy.Predict("question -> answer").batch(examples(unique), disable_progress_bar=True)
    finished = spans()
    assert container(finished, "predict.batch").attributes[NUM_THREADS] == 2
    only_container_spans_carry_it(finished, "predict.batch")


def test_batch_default_comes_from_dspy_configure(spans, make_lm, unique):
    dspy.configure(lm=make_lm(), num_threads=5)
    try:
        dspy.Predict("question -> answer").batch(examples(unique), disable_progress_bar=True)
    finally:
        dspy.configure(num_threads=8)
    assert container(spans(), "predict.batch").attributes[NUM_THREADS] == 5


def test_parallel_explicit_num_threads(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    dspy.Parallel(num_threads=4, disable_progress_bar=True)([(predict, ex) for ex in examples(unique)])
    finished = spans()
    assert container(finished, "parallel").attributes[NUM_THREADS] == 4
    only_container_spans_carry_it(finished, "parallel")


def test_parallel_forward_argument_wins(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    dspy.Parallel(num_threads=4, disable_progress_bar=True)([(predict, ex) for ex in examples(unique)], num_threads=1)
    assert container(spans(), "parallel").attributes[NUM_THREADS] == 1


def test_evaluate_explicit_num_threads(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    evaluate = dspy.Evaluate(devset=examples(unique), metric=lambda ex, pred, trace=None: 1.0, num_threads=2,
                             display_progress=False)
    evaluate(dspy.Predict("question -> answer"))
    finished = spans()
    assert container(finished, "evaluate").attributes[NUM_THREADS] == 2
    only_container_spans_carry_it(finished, "evaluate")


def test_evaluate_default_comes_from_dspy_context(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    evaluate = dspy.Evaluate(devset=examples(unique), metric=lambda ex, pred, trace=None: 1.0,
                             display_progress=False)
    with dspy.context(num_threads=3):
        evaluate(dspy.Predict("question -> answer"))
    evaluate(dspy.Predict("question -> answer"), num_threads=1)  # the call's argument beats the constructor's
    assert [s.attributes[NUM_THREADS] for s in spans() if s.name == "evaluate"] == [3, 1]


def test_batch_of_a_module_that_runs_parallel_keeps_each_count(spans, make_lm, unique):
    class Fanout(dspy.Module):
        def __init__(self):
            super().__init__()
            self.ask = dspy.Predict("question -> answer")

        def forward(self, question):
            pairs = [(self.ask, dspy.Example(question=f"{question} {i}").with_inputs("question")) for i in range(2)]
            return dspy.Parallel(num_threads=2, disable_progress_bar=True)(pairs)[0]

    dspy.configure(lm=make_lm())
    Fanout().batch(examples(unique), num_threads=3, disable_progress_bar=True)
    finished = spans()
    assert container(finished, "fanout.batch").attributes[NUM_THREADS] == 3
    inner = [s for s in finished if s.name == "fanout.parallel"]
    assert len(inner) == 2
    assert [s.attributes[NUM_THREADS] for s in inner] == [2, 2]
