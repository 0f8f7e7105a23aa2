"""A DSPy app traced by lmscope and by another DSPy instrumentation, run in a process of its own.

    python coexistence_app.py TOOL ORDER LEAVES

TOOL: openinference | logfire | mlflow. ORDER: `first` (the other tool is set up before `lmscope.instrument()`) or
`after`. LEAVES: `other` (the other tool is turned off midway, as its docs say) or `lmscope` (`lmscope.uninstrument()`
midway). Each process sets the global OpenTelemetry providers once, hence a process per combination
(tests/instrumentation/test_dspy_coexistence.py runs it and checks what it prints: one JSON object).

The LM is the stand-in server in this process; its bill (prompt and completion tokens of every request it answered)
is what lmscope's figures must equal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import types
import uuid
from typing import Any

TOOL, ORDER, LEAVES = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="lmscope-coexist-")
os.environ["DSPY_CACHEDIR"] = os.path.join(WORK, "dspy-cache")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
TRACE_FILE = os.path.join(WORK, "spans.jsonl")

# The app's MeterProvider, set before any tool: lmscope records its metrics there (no metric exporter of its own).
from observed import KeptWarnings, token_sums  # noqa: E402
from opentelemetry import metrics  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


WARNINGS = KeptWarnings()
logging.getLogger("lmscope").addHandler(WARNINGS)

import dspy  # noqa: E402
from dspy.clients.base_lm import BaseLM  # noqa: E402
from dspy.evaluate.evaluate import Evaluate  # noqa: E402
from dspy.primitives.module import Module  # noqa: E402

import lmscope  # noqa: E402
from lmscope import semconv  # noqa: E402
from lmscope._demo import build_program  # noqa: E402
from lmscope._lm_server import StandInLM  # noqa: E402
from lmscope.telemetry._report import summarize  # noqa: E402
from lmscope.telemetry._trace_file import read_trace_file  # noqa: E402
from lmscope.telemetry._tree import is_lm_call  # noqa: E402

WATCHED = [(Module, "__call__"), (Module, "acall"), (BaseLM, "__call__"), (BaseLM, "acall"), (dspy.LM, "__call__"),
           (Evaluate, "__call__")]
"""Methods lmscope patches that the other tools patch too (or shadow, as `LM.__call__` shadows `BaseLM.__call__`)."""
MISSING = "<none>"
DSPY_OWN = {f"{cls.__name__}.{name}": vars(cls).get(name, MISSING) for cls, name in WATCHED}


def other_on() -> None:
    if TOOL == "openinference":
        from openinference.instrumentation.dspy import DSPyInstrumentor

        DSPyInstrumentor().instrument()  # the global TracerProvider: lmscope's, when lmscope came first
    elif TOOL == "logfire":
        import logfire

        logfire.configure(send_to_logfire=False, console=False, metrics=False)
        logfire.instrument_dspy()
    else:
        import mlflow
        import mlflow.dspy

        mlflow.set_tracking_uri("sqlite:///" + os.path.join(WORK, "mlflow.db"))
        mlflow.dspy.autolog()


def other_off() -> None:
    if TOOL == "mlflow":
        import mlflow.dspy

        mlflow.dspy.autolog(disable=True)
    else:  # logfire.instrument_dspy() is OpenInference's instrumentor; Logfire has no call of its own to undo it
        from openinference.instrumentation.dspy import DSPyInstrumentor

        DSPyInstrumentor().uninstrument()


def token_points() -> dict[str, int]:
    """Sums of lmscope's gen_ai.client.token.usage histogram by token type, from the app's MeterProvider."""
    return token_sums(READER)


def describe(value: Any) -> str:
    """Whose object a DSPy attribute holds now: `dspy:<its own>`, `lmscope`, `<tool>(<what it wraps>)`, `<none>`."""
    if value is MISSING:
        return MISSING
    for key, own in DSPY_OWN.items():
        if value is own and own is not MISSING:
            return f"dspy:{key}"
    if type(value) is types.FunctionType:  # not isinstance: wrapt wrappers pass for what they wrap
        if value.__globals__.get("__name__", "").endswith(".__lmscope__"):
            return "lmscope"  # lmscope's wrappers run under this module name (lmscope/instrumentation/_stack.py)
        module = value.__globals__.get("__name__", "?")  # where the code is, whatever `functools.wraps` copied
    else:
        module = type(value).__module__  # a wrapper object (wrapt's)
    inner = getattr(value, "__wrapped__", None)
    return f"{module.split('.')[0]}({describe(inner)})" if inner is not None else module.split(".")[0]


def state() -> dict[str, Any]:
    found: dict[str, Any] = {f"{cls.__name__}.{name}": describe(vars(cls).get(name, MISSING)) for cls, name in WATCHED}
    # What MLflow puts back on `autolog(disable=True)`, and its callback.
    found["mlflow_puts_back"] = describe(vars(Evaluate).get("_gorilla_original___call__", MISSING))
    found["callbacks"] = [type(callback).__name__ for callback in dspy.settings.callbacks]
    return found


def main() -> None:
    result: dict[str, Any] = {"tool": TOOL}
    with StandInLM() as server:
        bill: list[tuple[int, int]] = []
        complete = server.complete

        def billed(body: Any) -> Any:
            answer = complete(body)
            bill.append((answer.prompt_tokens, answer.completion_tokens))
            return answer

        server.complete = billed  # type: ignore[method-assign]
        if ORDER == "first":
            other_on()
        handle = lmscope.instrument(exporters=["file"], file_path=TRACE_FILE)
        if ORDER == "after":
            other_on()
        result["state_both_on"] = state()
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-test"))
        program = build_program(retrieve=lambda query: ["Paris is the capital of France."])

        def run(phase: str, questions: int) -> None:
            start = len(bill)
            with lmscope.track() if lmscope.active() else _nothing() as usage:
                for _ in range(questions):
                    program(question=f"What is the capital of France? {uuid.uuid4().hex}")
            served = bill[start:]
            result[phase] = {"questions": questions, "server_calls": len(served), "server_prompt": sum(p for p, _ in served),
                             "server_completion": sum(c for _, c in served),
                             "track": usage.total() if usage is not None else None, "metrics": token_points()}

        run("both_on", 2)
        if LEAVES == "other":
            other_off()
        else:
            handle.uninstrument()
        result["state_one_left"] = state()
        result["active"] = lmscope.active() is not None
        run("one_left", 1)
        if lmscope.active() is not None:
            lmscope.uninstrument()
        else:
            other_off()
        result["state_none_left"] = state()
    result["dspy_own"] = {key: describe(value) for key, value in DSPY_OWN.items()}
    records = read_trace_file(TRACE_FILE)
    report = summarize(records)
    result["report"] = {"calls": report.total.calls, "input_tokens": report.total.input_tokens,
                        "output_tokens": report.total.output_tokens, "unpriced": report.total.unpriced_calls,
                        "traces": report.traces, "by_module": sorted(report.by_module)}
    result["lm_spans"] = [{"name": r.name, "lmscope": is_lm_call(r.attributes),
                           "input_tokens": r.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)}
                          for r in records if r.attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM]
    result["warnings"] = [message for message in WARNINGS.messages if "also traces DSPy" in message]
    print(json.dumps(result))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
