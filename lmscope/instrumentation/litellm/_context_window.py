"""`completion(..., context_window_fallback_dict={model: fallback})`: a request refused for its context window is sent
again to the fallback model, each request a span of its own.

LiteLLM decides it in its `client` wrapper, in the `except` block of the `ContextWindowExceededError`: it reads
`context_window_fallback_dict[model]` and calls its undecorated function again with that model, inside the traced
call, past the patched package attribute (docs/litellm-internals.md §6). Reading the fallback model from the mapping
is the one step of that decision lmscope can see, so the call hands LiteLLM an equal mapping (`FallbackModels`) whose
`__getitem__`, when it is that decision, ends the failed request's span with its error and opens the fallback model's
(`LiteLLMRuntime.fall_back`). Read anywhere else (no such error being handled) it is the caller's mapping.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from ._spans import LiteLLMRuntime

KEYWORD = "context_window_fallback_dict"


class FallbackModels(dict[str, str]):
    """The caller's `context_window_fallback_dict`, equal to it, telling `runtime` when LiteLLM falls back. A copy,
    a deep copy or a pickle of it is a plain dict (LiteLLM copies its keywords for logging)."""

    __slots__ = ("runtime",)

    def __init__(self, models: Mapping[str, str], runtime: LiteLLMRuntime) -> None:
        super().__init__(models)
        self.runtime = runtime

    def __getitem__(self, model: str) -> str:
        fallback = super().__getitem__(model)
        _fell_back(self.runtime, fallback)
        return fallback

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)


def _fell_back(runtime: LiteLLMRuntime, fallback: Any) -> None:
    """`fallback` was read from the mapping: when a traced call is handling its `ContextWindowExceededError` there,
    LiteLLM is about to send its request to `fallback`."""
    try:
        from litellm.exceptions import ContextWindowExceededError

        frame = runtime.current_call()
        error = sys.exc_info()[1]
        if frame is not None and not frame.handed_over and isinstance(error, ContextWindowExceededError):
            runtime.fall_back(frame, error, str(fallback))
    except Exception as exc:  # noqa: BLE001 - the fallback's request stays inside the failed one's span
        report_internal_error("tracing LiteLLM's context window fallback", exc)


def watch_fallbacks(runtime: LiteLLMRuntime, kwargs: dict[str, Any]) -> None:
    """Give a traced call's `context_window_fallback_dict`, if it is a plain dict, as a `FallbackModels`. A mapping
    of another class may answer lookups its own way (model names in any case, say), which an equal dict would not:
    it is left as the caller gave it, and the fallback's request stays inside the failed request's span."""
    models = kwargs.get(KEYWORD)
    if type(models) is dict and models:
        kwargs[KEYWORD] = FallbackModels(models, runtime)
