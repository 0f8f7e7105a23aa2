"""Running a DSPy app under OpenTelemetry's real `opentelemetry-instrument` (this venv's), exporting OTLP/HTTP to a
test receiver: shared by the auto-instrumentation tests and the `lmscope run` composition tests.

It needs `opentelemetry-distro` and an install of lmscope that carries the `lmscope_dspy` entry point: the dev extra
has both (.ci/test.sh installs it). The dev extra also installs OpenInference's DSPy and LiteLLM instrumentors, whose
entry points are named `dspy` and `litellm`: the runs here turn those off by name, as a user who wants lmscope's
spans alone would.
"""

from __future__ import annotations

import os
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

APP = textwrap.dedent("""
    import json, sys

    import dspy

    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.ChainOfThought("question -> answer")

        def forward(self, question):
            return self.answer(question=question)

    lm = dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-test-key", cache=False)
    dspy.configure(lm=lm)
    answer = QA()(question="What is the capital of France?").answer
    history = [{"messages": entry["messages"], "outputs": entry["outputs"], "usage": dict(entry["usage"])}
               for entry in lm.history]
    # DSPy < 3.4 keeps LiteLLM's usage objects in its history: their plain fields are what the server billed.
    print(json.dumps({"answer": answer, "history": history}, default=lambda value: value.model_dump()))
""")

QA_TREE = [("qa", [("qa.answer", [("qa.answer.predict", [("chat gpt-4o-mini", [])])])])]
"""The span tree one call of APP's program gives."""


def launcher() -> Path:
    """This venv's `opentelemetry-instrument`; fails the test when it or lmscope's entry point is missing."""
    path = Path(sys.executable).parent / "opentelemetry-instrument"
    entry_points = [ep for ep in metadata.entry_points(group="opentelemetry_instrumentor") if ep.name == "lmscope_dspy"]
    if not path.exists() or not entry_points:
        pytest.fail("needs opentelemetry-distro and lmscope's entry point in this venv: pip install -e '.[dev]'")
    return path


def otel_env(workdir: Path, receiver: Any, **extra_env: str) -> dict[str, str]:
    """The environment of a run whose distro exports spans (only) to `receiver`, OpenInference's instrumentors off."""
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "dspy,litellm",
           "DSPY_CACHEDIR": str(workdir / "dspy-cache"), **extra_env}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def span_tree(spans: list[Any]) -> list[Any]:
    """Nested (name, [children]) lists of received protobuf spans, children in start order."""
    ids = {span.span_id for span in spans}
    children: dict[bytes, list[Any]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
        (children.setdefault(span.parent_span_id, []) if span.parent_span_id in ids else roots).append(span)

    def node(span: Any) -> Any:
        return (span.name, [node(child) for child in children.get(span.span_id, [])])

    return [node(root) for root in roots]


def span_attributes(span: Any) -> dict[str, Any]:
    """A received protobuf span's attributes as plain values."""
    from google.protobuf.json_format import MessageToDict

    values = {}
    for item in span.attributes:
        value = MessageToDict(item.value)
        values[item.key] = next(iter(value.values())) if value else None
    return values
