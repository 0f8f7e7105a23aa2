"""A one-step program whose call takes, beside its question, a value it never sends the LM (a client, a number):
what content capture records of the program's own objects.

Import it as `from side_input_program import AsksWithASideInput` (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import dspy


class AsksWithASideInput(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ask = dspy.Predict("question -> answer")

    def forward(self, question: str, side: Any) -> Any:
        return self.ask(question=question)
