"""A module called with positional arguments records them by the names its `forward` gives them, as DSPy's tutorials
call retrievers (`self.retrieve(question)`); only what `forward` does not name stays under "args". Real DSPy modules,
no LM involved."""

from __future__ import annotations

import json

import dspy

from lmscope.telemetry import _semconv as semconv


class Search(dspy.Module):
    def forward(self, query: str, k: int = 3) -> dspy.Prediction:
        return dspy.Prediction(passages=[f"{query} #{i}" for i in range(k)])


class Passthrough(dspy.Module):
    def forward(self, *args: object, **kwargs: object) -> dspy.Prediction:
        return dspy.Prediction(seen=len(args) + len(kwargs))


class Program(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.search = Search()
        self.passthrough = Passthrough()

    def forward(self, question: str) -> dspy.Prediction:
        self.search(question)
        self.search(question, 2)
        self.search(question, k=1)
        self.passthrough(question, 7, flag=True)
        return dspy.Prediction(answer=question)


def test_positional_arguments_are_recorded_by_their_parameter_names(spans, unique):
    question = f"capital of France {unique}"

    Program()(question)

    inputs = [json.loads(span.attributes[semconv.INPUT_VALUE])
              for span in sorted(spans(), key=lambda span: span.start_time)]
    assert inputs == [
        {"question": question},
        {"query": question},
        {"query": question, "k": 2},
        {"query": question, "k": 1},
        {"args": [question, 7], "flag": True},
    ]
