"""The LiteLLM versions this instrumentation is written against (kept equal to the `litellm` extra)."""

_instruments = ("litellm >= 1.109, != 1.82.7, != 1.82.8",)
