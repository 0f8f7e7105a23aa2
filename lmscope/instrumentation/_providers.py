"""The provider of an LM call whose model name has no provider prefix (`gpt-4o-mini`, which LiteLLM routes to OpenAI
itself), for LiteLLM spans and DSPy's alike: the one the caller named (`custom_llm_provider`), else the one LiteLLM's
result names (docs/litellm-internals.md §2). A prefix (`openai/gpt-4o-mini`) names it before either is read.

Read by duck typing: no LiteLLM import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._token_counts import get

CACHE_REPLAY = "cached_response"
"""What a stream LiteLLM replays from its own cache calls its provider: no provider answered it."""


def provider_given(options: Any) -> str | None:
    """The caller's `custom_llm_provider` in `options` (a call's keyword arguments, an LM's `kwargs`), if any."""
    if type(options) is not dict and not isinstance(options, Mapping):  # a dict first: the ABC check is slow
        return None
    given = options.get("custom_llm_provider")
    return given if isinstance(given, str) and given else None


def provider_answered(result: Any) -> str | None:
    """The provider LiteLLM routed a call to, as its result says: a response's `_hidden_params["custom_llm_provider"]`,
    a stream's `custom_llm_provider`. Never `cached_response`: a replay from LiteLLM's cache asked no provider."""
    provider = (get(getattr(result, "_hidden_params", None), "custom_llm_provider")
                or getattr(result, "custom_llm_provider", None))
    return provider if isinstance(provider, str) and provider and provider != CACHE_REPLAY else None
