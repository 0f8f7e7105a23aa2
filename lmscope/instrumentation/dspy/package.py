"""The DSPy versions this instrumentation is written against (kept equal to the `dspy` extra)."""

_instruments = ("dspy >= 3.0, < 3.5",)
