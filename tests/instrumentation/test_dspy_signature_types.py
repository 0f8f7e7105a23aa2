"""A string signature's types resolve to the program's own classes, traced as untraced.

DSPy resolves a type named in a string signature (`"question -> evaluation: Evaluation"`) by looking for the name in
the locals and globals of every frame up the stack (`dspy/signatures/signature.py`). lmscope's wrapper of
`Module.__call__` sits between the program's function, where the class is defined, and DSPy: its frame must not offer
lmscope's own `Evaluation`, OpenTelemetry's `Context` or contextvars' `Token` in place of the program's. It did: the
program raised pydantic's `PydanticSchemaGenerationError` and sent no request.
"""

from __future__ import annotations

import json
from typing import Any

import dspy
import pytest
from dspy_release import needs_dspy
from pydantic import BaseModel
from test_dspy_cache_fidelity import instrumented

ANSWERS = {"evaluation": {"score": 1, "verdict": "yes"}, "context": {"facts": ["Paris is in France"]},
           "token": {"text": "Paris", "tag": "LOC"}}


def _judge(lm_server: Any, make_lm: Any, question: str) -> tuple[list[Any], list[type], list[bytes]]:
    class Evaluation(BaseModel):
        score: int
        verdict: str

    class Context(BaseModel):
        facts: list[str]

    class Token(BaseModel):
        text: str
        tag: str

    class Judge(dspy.Module):
        def forward(self, question: str) -> list[Any]:
            return [dspy.Predict("question -> evaluation: Evaluation")(question=question).evaluation,
                    dspy.Predict("question -> context: Context")(question=question).context,
                    dspy.Predict("question -> token: Token")(question=question).token]

    dspy.configure(lm=make_lm(cache=False))
    lm_server.recorded_bodies = []
    try:
        return Judge()(question=question), [Evaluation, Context, Token], list(lm_server.recorded_bodies)
    finally:
        lm_server.recorded_bodies = None


def test_types_defined_in_the_calling_function_are_the_programs_own(lm_server: Any, make_lm: Any, unique: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for field, answer in ANSWERS.items():
        monkeypatch.setitem(lm_server.model_answers, field, json.dumps(answer))
    question = f"Is Paris the capital of France? {unique}"
    untraced, untraced_classes, untraced_requests = _judge(lm_server, make_lm, question)
    with instrumented() as spans:
        traced, traced_classes, traced_requests = _judge(lm_server, make_lm, question)
        lm_spans = [span for span in spans() if span.name.startswith("chat ")]
    assert [type(value) for value in untraced] == untraced_classes
    assert [type(value) for value in traced] == traced_classes
    assert [value.model_dump() for value in traced] == list(ANSWERS.values())
    assert len(traced_requests) == 3 and traced_requests == untraced_requests
    assert len(lm_spans) == 3


@needs_dspy((3, 2), "single-threaded runs on the calling thread (before, a worker thread runs the item, where no "
                    "frame of the calling function is on the stack and DSPy cannot resolve its types at all)")
@pytest.mark.parametrize("run", ["evaluate", "batch"])
def test_a_type_of_the_calling_function_in_a_single_threaded_run(run: str) -> None:
    """With `num_threads=1` DSPy runs the items on the calling thread, under lmscope's wrapper of the executor: that
    frame offered lmscope's `Evaluation` too."""

    class Evaluation(BaseModel):
        score: int

    resolved = []

    class Judge(dspy.Module):
        def forward(self, question: str) -> Any:
            resolved.append(dspy.Signature("question -> evaluation: Evaluation").output_fields["evaluation"].annotation)
            return dspy.Prediction(answer="x")

    devset = [dspy.Example(question="q").with_inputs("question")]
    with instrumented():
        if run == "evaluate":
            dspy.Evaluate(devset=devset, metric=lambda *_: 1.0, num_threads=1, display_progress=False)(Judge())
        else:
            Judge().batch(devset, num_threads=1)
    assert resolved == [Evaluation]
