"""A module called with positional arguments records them by the names its `forward` gives them, as DSPy's tutorials
call retrievers (`self.retrieve(question)`); only what `forward` does not name stays under "args". Real DSPy modules,
no LM involved."""

from __future__ import annotations

import asyncio
import json

import dspy

from lmscope.telemetry import _semconv as semconv


class Search(dspy.Module):
    def forward(self, query: str, k: int = 3) -> dspy.Prediction:
        return dspy.Prediction(passages=[f"{query} #{i}" for i in range(k)])


class Passthrough(dspy.Module):
    def forward(self, *args: object, **kwargs: object) -> dspy.Prediction:
        return dspy.Prediction(seen=len(args) + len(kwargs))


class StaticSearch(dspy.Module):
    @staticmethod
    def forward(query: str, k: int = 3) -> dspy.Prediction:
        return dspy.Prediction(passages=[query] * k)


class ClassSearch(dspy.Module):
    @classmethod
    def forward(cls, query: str, k: int = 3) -> dspy.Prediction:
        return dspy.Prediction(passages=[query] * k)


class NamedArgs(dspy.Module):
    def forward(self, args: object, *rest: object) -> dspy.Prediction:
        return dspy.Prediction(seen=1 + len(rest))


class AsyncSearch(dspy.Module):
    def forward(self, question: str) -> dspy.Prediction:
        return dspy.Prediction(passages=[question])

    async def aforward(self, query: str, k: int = 3) -> dspy.Prediction:
        return dspy.Prediction(passages=[query] * k)


class Program(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.search = Search()
        self.passthrough = Passthrough()
        self.static = StaticSearch()
        self.by_class = ClassSearch()
        self.named_args = NamedArgs()
        self.own = Search()
        self.own.forward = lambda text, n=1: dspy.Prediction(passages=[text] * n)  # set on the instance

    def forward(self, question: str) -> dspy.Prediction:
        self.search(question)
        self.search(question, 2)
        self.search(question, k=1)
        self.passthrough(question, 7, flag=True)
        self.static(question, 2)
        self.by_class(question, 2)
        self.named_args(question, 7)
        self.own(question, 2)
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
        {"query": question, "k": 2},
        {"query": question, "k": 2},
        {"args": question, "*args": [7]},
        {"text": question, "n": 2},
    ]


def test_an_async_call_names_them_as_aforward_does(spans, unique):
    question = f"capital of France {unique}"

    asyncio.run(AsyncSearch().acall(question, 2))

    (span,) = spans()
    assert json.loads(span.attributes[semconv.INPUT_VALUE]) == {"query": question, "k": 2}
