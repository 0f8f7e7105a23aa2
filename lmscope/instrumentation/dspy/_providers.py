"""The provider of a DSPy LM call whose model name has no provider prefix (`dspy.LM("gpt-4o-mini")`), known only once
an engine has answered (docs/dspy-internals.md §4):

- LiteLLM's engine (and every call on DSPy 3.0-3.3): what LiteLLM's response names, as for a plain LiteLLM call
  (`instrumentation/_providers.py`); a DSPy cache hit restores the stored response, which still names it.
- DSPy's native engine: its responses name no provider. It sends a call where lm15's router resolves the model string
  (`select_backend`), offline and the same every time, so that resolution is the provider, a cache hit's too (the
  cache key holds the model string). lm15 names its own providers (`openai-chat`): lmscope's provider values are
  LiteLLM's keys, which DSPy maps them to for pricing (`model_metadata._provider_names`: `openai-chat` -> `openai`).

A custom engine (`dspy.LM(..., engine=MyEngine())`), DummyLM and legacy LMs name none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from ...telemetry._memo import BoundedMemo
from .._providers import provider_answered


def answered_by(lm: Any, result: Any, engine: str | None) -> str | None:
    """The provider of a finished call whose model name has none; `engine` as `_results.engine_name` tells it."""
    try:
        if engine == "litellm":
            return provider_answered(getattr(result, "raw", None))
        if engine == "native" and type(getattr(lm, "_engine_spec", None)) is str:  # not a custom engine
            if getattr(lm, "_providers", None):  # providers declared on the LM: DSPy resolves with them (rare)
                from dspy.clients.capabilities import resolve

                return _as_litellm_key(lambda: resolve(lm))
            return _native_routes((str(lm.model), str(getattr(lm, "model_type", "chat"))))
    except Exception as exc:  # noqa: BLE001 - costs the span its provider, not the call
        report_internal_error("provider of a bare model name", exc)
    return None


def _native_route(key: tuple[str, str]) -> str | None:
    """The LiteLLM key of what `dspy.clients.capabilities.resolve` answers for an LM of this model string and type
    that declares no providers."""
    from dspy.clients.engines.lm15_engine import LM15Engine
    from dspy.lm15 import RouterConfig

    model, model_type = key
    return _as_litellm_key(lambda: LM15Engine(RouterConfig(env={}), model_type=model_type).resolve(model))


_native_routes: BoundedMemo[tuple[str, str], str | None] = BoundedMemo(_native_route)
"""(model string, model type) -> LiteLLM provider key: lm15 builds a router to resolve one (~25 µs)."""


def _as_litellm_key(resolve: Callable[[], Any]) -> str | None:
    """The LiteLLM key of the lm15 provider `resolve()` returns the resolution of; None for a model string lm15 cannot
    route (as `select_backend`, which then sends the call to LiteLLM)."""
    from dspy.clients.model_metadata import _provider_names
    from dspy.lm15 import UnknownModelError, UnsupportedFeatureError

    try:
        provider = resolve().provider
    except (UnknownModelError, UnsupportedFeatureError):
        return None
    keys = _provider_names(provider)
    return str(keys[0]) if keys else str(provider)
