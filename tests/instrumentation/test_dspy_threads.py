"""One trace for batch, Parallel, Evaluate and acall; settings, overrides, context and track() in workers."""

from __future__ import annotations

import asyncio

import dspy
import pytest
from dspy_release import needs_dspy

import lmscope
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._usage import track


def examples(unique, n=3):
    return [dspy.Example(question=f"Question {i} {unique}").with_inputs("question") for i in range(n)]


def test_batch_is_one_trace_with_indexed_items(spans, make_lm, rag, unique, tree, rag_tree):
    dspy.configure(lm=make_lm())
    with dspy.context(num_threads=3):
        results = rag.batch(examples(unique), num_threads=3, disable_progress_bar=True)

    finished = spans()
    assert len(results) == 3
    assert len({s.context.trace_id for s in finished}) == 1
    (batch,) = tree(finished)
    assert batch[0] == "rag.batch"
    assert sorted(batch[1]) == [rag_tree] * 3
    items = sorted((s for s in finished if s.name == "rag"), key=lambda s: s.attributes[semconv.BATCH_INDEX])
    assert [s.attributes[semconv.BATCH_INDEX] for s in items] == [0, 1, 2]
    questions = [s.attributes[semconv.INPUT_VALUE] for s in items]
    assert questions == [f'{{"question": "Question {i} {unique}"}}' for i in range(3)]
    # The dspy.context override is seen inside worker threads, on the LM spans they make.
    for span in finished:
        if span.name.startswith("chat "):
            assert span.attributes[semconv.SETTINGS_OVERRIDES] == ("num_threads",)
            assert span.attributes["lmscope.settings.num_threads"] == 3
    batch_span = next(s for s in finished if s.name == "rag.batch")
    # The batch's own row says what went in and came out (its items are its children).
    assert batch_span.attributes[semconv.INPUT_VALUE] == '{"examples": 3}'
    assert batch_span.attributes[semconv.OUTPUT_VALUE] == '{"results": 3, "failed": 0}'
    assert batch_span.attributes[semconv.BATCH_SIZE] == 3 and batch_span.attributes[semconv.BATCH_FAILED] == 0
    assert batch_span.attributes[semconv.LM_CALLS] == 6
    assert batch_span.attributes[semconv.USAGE_INPUT_TOKENS] == sum(
        s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in finished if s.name.startswith("chat "))


def test_parallel_and_evaluate_nest_under_the_caller(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    dspy.Parallel(num_threads=2, disable_progress_bar=True)([(predict, ex) for ex in examples(unique, 2)])
    evaluate = dspy.Evaluate(devset=examples(unique + "e", 2), metric=lambda ex, pred, trace=None: 1.0,
                             num_threads=2, display_progress=False)
    evaluate(predict)

    finished = spans()
    roots = [s for s in finished if s.parent is None]
    assert sorted(s.name for s in roots) == ["evaluate", "parallel"]
    evaluate_span, parallel_span = sorted(roots, key=lambda s: s.name)
    assert evaluate_span.attributes[semconv.SPAN_KIND] == "EVALUATOR"
    assert evaluate_span.attributes[semconv.INPUT_VALUE] == '{"examples": 2, "metric": "<lambda>"}'
    assert evaluate_span.attributes[semconv.OUTPUT_VALUE] == '{"score": 100.0, "results": 2}'
    assert evaluate_span.attributes[semconv.EVALUATE_SCORE] == 100.0
    assert evaluate_span.attributes[semconv.BATCH_SIZE] == 2
    assert parallel_span.attributes[semconv.INPUT_VALUE] == '{"tasks": 2}'
    assert parallel_span.attributes[semconv.OUTPUT_VALUE] == '{"results": 2, "failed": 0}'
    def children(span):
        return [s for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id]

    # Parallel's items are its children; Evaluate's are `example {i}` spans (which carry the batch index), each
    # holding that example's program call and its metric (`test_dspy_evaluate.py` says more).
    assert sorted(s.attributes[semconv.BATCH_INDEX] for s in children(parallel_span)) == [0, 1]
    assert {s.name for s in children(parallel_span)} == {"predict"}
    example_spans = children(evaluate_span)
    assert sorted(s.attributes[semconv.BATCH_INDEX] for s in example_spans) == [0, 1]
    assert sorted(s.name for s in example_spans) == ["example 0", "example 1"]
    for example in example_spans:
        assert sorted(s.name for s in children(example)) == ["metric <lambda>", "predict"]
    # What ran under Evaluate (its worker threads included) is evaluating; the rest serves.
    evaluating = {s.context.span_id for s in finished if s.context.trace_id == evaluate_span.context.trace_id}
    assert len(evaluating) == 9  # evaluate, 2 examples, 2 predict, 2 metrics, 2 LM calls
    for span in finished:
        expected = "evaluate" if span.context.span_id in evaluating else "serve"
        assert span.attributes[semconv.PHASE] == expected, span.name
    assert {s.context.trace_id for s in children(parallel_span)} == {parallel_span.context.trace_id}


class _FailsOnOdd(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        if question.startswith("Question 1 "):
            raise ValueError("no answer for this one")
        return self.predict(question=question)


@pytest.mark.parametrize("return_failed", [False, True])
def test_a_batch_with_failures_says_how_many_failed(spans, make_lm, unique, return_failed):
    dspy.configure(lm=make_lm())
    out = _FailsOnOdd().batch(examples(unique, 3), num_threads=2, max_errors=5, disable_progress_bar=True,
                              return_failed_examples=return_failed)

    results = out[0] if return_failed else out
    assert sum(r is None for r in results) == 1  # DSPy keeps the failed item's place either way
    (batch,) = [s for s in spans() if s.name.endswith(".batch")]
    assert batch.attributes[semconv.BATCH_SIZE] == 3 and batch.attributes[semconv.BATCH_FAILED] == 1
    assert batch.attributes[semconv.OUTPUT_VALUE] == '{"results": 3, "failed": 1}'


@pytest.mark.parametrize("how", ["batch", "parallel"])
def test_a_batch_dspy_gives_up_on_says_how_many_failed(spans, lm_server, unique, how):
    """`max_errors` reached: DSPy raises instead of returning results; the span still counts the items that raised,
    as Evaluate's span counts its errors."""
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x", cache=False))
    program, items = _FailsOnOdd(), examples(unique, 3)
    with pytest.raises(Exception, match=r"^Execution cancelled due to errors or interruption\.$"):
        if how == "batch":
            program.batch(items, num_threads=1, max_errors=1, disable_progress_bar=True)
        else:
            dspy.Parallel(num_threads=1, max_errors=1, disable_progress_bar=True)([(program, i) for i in items])
    (container,) = [s for s in spans() if s.parent is None]
    assert container.status.status_code.name == "ERROR"
    assert container.attributes[semconv.BATCH_SIZE] == 3 and container.attributes[semconv.BATCH_FAILED] == 1


def test_acall_tasks_nest_under_their_parent_module(spans, make_lm, unique, tree):
    class Fanout(dspy.Module):
        def __init__(self):
            super().__init__()
            self.ask = dspy.Predict("question -> answer")

        async def aforward(self, questions):
            return await asyncio.gather(*(self.ask.acall(question=q) for q in questions))

    dspy.configure(lm=make_lm())
    asyncio.run(Fanout().acall(questions=[f"a {unique}", f"b {unique}"]))
    assert tree(spans()) == [("fanout", [("fanout.ask", [("chat gpt-4o-mini", [])])] * 2)]


def test_context_and_track_follow_worker_threads_and_count_cache_hits(spans, make_lm, rag, unique):
    dspy.configure(lm=make_lm())
    with track() as usage, lmscope.context(session_id="s-1", user_id="u-1", tags=["t"], metadata={"run": 7}):
        rag.batch(examples(unique), num_threads=3, disable_progress_bar=True)
        rag.batch(examples(unique), num_threads=3, disable_progress_bar=True)  # all six LM calls now hit the cache

    finished = spans()
    for span in finished:
        assert span.attributes[semconv.SESSION_ID] == "s-1", span.name
        assert span.attributes[semconv.USER_ID] == "u-1"
        assert span.attributes[semconv.TAG_TAGS] == ("t",)
        assert span.attributes[semconv.METADATA] == '{"run": 7}'
    calls = [s.attributes for s in finished if s.name.startswith("chat ")]
    billed = [a for a in calls if not a[semconv.CACHE_HIT]]
    hits = [a for a in calls if a[semconv.CACHE_HIT]]
    assert (len(billed), len(hits)) == (6, 6)
    assert usage.by_model() == {"gpt-4o-mini": {
        "input_tokens": sum(a[semconv.GEN_AI_USAGE_INPUT_TOKENS] for a in billed),
        "output_tokens": sum(a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] for a in billed),
        "cached_tokens": sum(a[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] for a in billed),
        "calls": 12, "cache_hits": 6,
        "cost_usd": pytest.approx(sum(a[semconv.GEN_AI_USAGE_COST] for a in billed), rel=1e-12),
        "saved_usd": pytest.approx(sum(a[semconv.CACHE_SAVED_USD] for a in hits), rel=1e-12),
        "unpriced_calls": 0,
    }}


@needs_dspy((3, 4), "a batch that runs under dspy.track_usage() (3.0 returns [None, None] without calling the LM, "
                   "3.3 raises in its workers)")
def test_dspy_own_tracker_loses_batch_usage_where_track_does_not(spans, make_lm, rag, unique):
    dspy.configure(lm=make_lm())
    with dspy.track_usage() as theirs, track() as ours:
        rag.batch(examples(unique, 2), num_threads=2, disable_progress_bar=True)
    assert theirs.get_total_tokens() == {}  # DSPy deep-copies its tracker per worker and drops the copies
    assert ours.by_model()["gpt-4o-mini"]["calls"] == 4
    assert ours.by_model()["gpt-4o-mini"]["input_tokens"] > 0
