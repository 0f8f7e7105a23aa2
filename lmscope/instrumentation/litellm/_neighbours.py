"""Other LiteLLM instrumentations running next to lmscope: told once, with what they add and how to turn them off.

Found where they leave marks in LiteLLM: OpenInference's patch of `litellm.completion` (a bound method of its
instrumentor, which `logfire.instrument_litellm()` also runs) and LiteLLM's own OpenTelemetry callback in
`litellm.callbacks` / `litellm.success_callback` ("otel", or the `OpenTelemetry` logger it becomes). Looked at
when a LiteLLM span starts and one of those marks changed since the last look (identity and length comparisons).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._neighbours import LOGFIRE, OPENINFERENCE, openinference_patchers, warn_once

LITELLM_OTEL = "litellm-otel"

_MESSAGES = {
    OPENINFERENCE: (
        "lmscope: OpenInference's LiteLLM instrumentor (openinference-instrumentation-litellm) also traces LiteLLM: "
        "each call also appears as its `completion` / `acompletion` / `CreateEmbeddings` span, around lmscope's "
        "`chat <model>` span. lmscope's spans, metrics, track() and report count only lmscope's own. To turn it "
        "off: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=litellm under opentelemetry-instrument, or "
        "openinference.instrumentation.litellm.LiteLLMInstrumentor().uninstrument()"),
    LOGFIRE: (
        "lmscope: Logfire's LiteLLM instrumentation (logfire.instrument_litellm(), OpenInference's LiteLLM "
        "instrumentor) also traces LiteLLM: each call also appears as its `completion` / `acompletion` / "
        "`CreateEmbeddings` span in Logfire, around lmscope's `chat <model>` span. lmscope's spans, metrics, "
        "track() and report count only lmscope's own. To turn it off: remove logfire.instrument_litellm(), or call "
        "openinference.instrumentation.litellm.LiteLLMInstrumentor().uninstrument()"),
    LITELLM_OTEL: (
        "lmscope: LiteLLM's OpenTelemetry callback (\"otel\" in litellm.callbacks) also traces LiteLLM calls: it "
        "finds lmscope's span current and adds nothing to it; its `raw_gen_ai_request` spans (children of "
        "lmscope's) and, for a sync stream, its `litellm_request` span go through the global TracerProvider, which it "
        "sets up (exporting with OTEL_EXPORTER, default console) when the app has not. lmscope's spans, metrics, "
        "track() and report count only lmscope's own. To turn it off: remove \"otel\" from litellm.callbacks"),
}
_LITELLM_OTEL_MODULES = ("litellm.integrations.opentelemetry", "litellm.integrations.otel.")


class LiteLLMNeighbours:
    """Watches the places other LiteLLM instrumentations mark, and warns once per tool found there."""

    def __init__(self, litellm: ModuleType) -> None:
        self._module_dict = vars(litellm)  # a live view: a later patch or `litellm.callbacks = [...]` shows in it
        self._seen: tuple[Any, ...] = ()

    def look(self) -> None:
        """Per LiteLLM span: three dict lookups, two lengths, identity comparisons, unless a mark changed."""
        get = self._module_dict.get
        completion, callbacks, success = get("completion"), get("callbacks"), get("success_callback")
        marks = (completion, callbacks, success, _length(callbacks), _length(success))
        seen = self._seen
        if seen and marks[0] is seen[0] and marks[1] is seen[1] and marks[2] is seen[2] and marks[3:] == seen[3:]:
            return
        self._seen = marks
        try:
            found = openinference_patchers([(completion, "completion")])
            if any(_is_litellm_otel(callback) for callback in [*(callbacks or ()), *(success or ())]):
                found.append(LITELLM_OTEL)
            for tool in found:
                warn_once(f"litellm:{tool}", _MESSAGES[tool])
        except Exception as exc:  # noqa: BLE001
            report_internal_error("looking for other LiteLLM instrumentations", exc)


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else -1


def _is_litellm_otel(callback: Any) -> bool:
    if isinstance(callback, str):
        return callback == "otel"
    module = type(callback).__module__
    return module == _LITELLM_OTEL_MODULES[0] or module.startswith(_LITELLM_OTEL_MODULES[1])
