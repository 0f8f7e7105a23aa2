"""Other DSPy instrumentations running next to lmscope: told once, with what they add and how to turn them off.

lmscope keeps tracing whatever else runs (`_patching.py` layers its wrappers beneath other tools' and survives their
uninstrument), and counts only its own LM spans. But each LM call then also shows as the other tool's spans, which a
user should hear about once, by name. Found where they leave marks in DSPy: wrapt wrappers on `Module.__call__` and
`LM.__call__` (OpenInference's DSPy instrumentor, which `logfire.instrument_dspy()` runs) and callbacks in
`dspy.settings.callbacks` (`mlflow.dspy.autolog()`).

Looked at when lmscope patches DSPy, and again at the start of each top-level span when one of those marks changed
since the last look (an identity comparison each): a tool set up after lmscope is told at its first traced call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._neighbours import LOGFIRE, OPENINFERENCE, openinference_patchers, warn_once

MLFLOW = "mlflow"

_MESSAGES = {
    OPENINFERENCE: (
        "lmscope: OpenInference's DSPy instrumentor (openinference-instrumentation-dspy) also traces DSPy: each LM "
        "call also appears as its `LM.__call__` LLM span, around lmscope's `chat <model>` span, and each module "
        "call as its CHAIN spans. lmscope's spans, metrics, track() and report count only lmscope's own. To turn it "
        "off: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=dspy under opentelemetry-instrument, or "
        "openinference.instrumentation.dspy.DSPyInstrumentor().uninstrument()"),
    LOGFIRE: (
        "lmscope: Logfire's DSPy instrumentation (logfire.instrument_dspy(), OpenInference's DSPy instrumentor) "
        "also traces DSPy: each LM call also appears as its `LM.__call__` LLM span in Logfire, and each module call "
        "as its CHAIN spans. lmscope's spans, metrics, track() and report count only lmscope's own. To turn it off: "
        "remove logfire.instrument_dspy(), or call "
        "openinference.instrumentation.dspy.DSPyInstrumentor().uninstrument()"),
    MLFLOW: (
        "lmscope: MLflow's DSPy autologging (mlflow.dspy.autolog()) also traces DSPy: each LM call and module call "
        "also appears as a span of an MLflow trace, through DSPy callbacks. lmscope's spans, metrics, track() and "
        "report count only lmscope's own. To turn it off: mlflow.dspy.autolog(disable=True)"),
}


class Neighbours:
    """Watches the places other DSPy instrumentations mark, and warns once per tool found there."""

    def __init__(self, global_config: Mapping[str, Any], module_class: type, lm_class: type) -> None:
        self._config = global_config
        """DSPy's global settings dict (`dspy.configure` sets keys in it; `mlflow.dspy.autolog()` sets callbacks)."""
        self._module_dict = vars(module_class)  # a live view: a later patch shows in it
        self._lm_dict = vars(lm_class)
        self._seen: tuple[Any, Any, Any] = (None, None, None)

    def look(self) -> None:
        """Per top-level span: three dict lookups and identity comparisons (~0.3 us) unless a mark changed."""
        seen = self._seen
        module_call = self._module_dict.get("__call__")
        lm_call = self._lm_dict.get("__call__")
        callbacks = self._config.get("callbacks")
        if module_call is seen[0] and lm_call is seen[1] and callbacks is seen[2]:
            return
        self._seen = (module_call, lm_call, callbacks)
        try:
            for tool in _tools(self._seen):
                warn_once(tool, _MESSAGES[tool])
        except Exception as exc:  # noqa: BLE001
            report_internal_error("looking for other DSPy instrumentations", exc)


def _tools(marks: tuple[Any, Any, Any]) -> list[str]:
    found = openinference_patchers([(marks[0], "__call__"), (marks[1], "__call__")])
    if any(type(callback).__module__.startswith("mlflow.") for callback in marks[2] or ()):
        found.append(MLFLOW)
    return found
