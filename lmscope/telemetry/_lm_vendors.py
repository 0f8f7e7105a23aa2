"""LM vendors (OpenAI, Azure, Bedrock, ...): split from a model route, and named as each convention spells them.

The GenAI conventions call the vendor the "provider" (`gen_ai.provider.name`, OpenInference's `llm.provider`); it has
nothing to do with OpenTelemetry's tracer or meter providers. Routes are LiteLLM's, which DSPy uses for its
models: `openai/gpt-4o-mini`, `bedrock/anthropic.claude-3`; the part before the first `/` is LiteLLM's provider key.
"""

from __future__ import annotations

# OTel GenAI v1.41 well-known values, mapped the way LiteLLM's own OTel integration maps them.
_GEN_AI = {
    "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock", "vertex_ai": "gcp.vertex_ai", "gemini": "gcp.gemini",
    "mistral": "mistral_ai", "xai": "x_ai", "watsonx": "ibm.watsonx.ai",
}
# OpenInference `llm.provider` values.
_OPENINFERENCE = {
    "azure": "azure", "azure_ai": "azure", "bedrock": "aws", "bedrock_converse": "aws", "vertex_ai": "google",
    "gemini": "google", "mistral": "mistralai",
}


def split_route(route: str) -> tuple[str | None, str]:
    """`openai/gpt-4o-mini` -> (`openai`, `gpt-4o-mini`); a bare model name has no known provider."""
    provider, sep, model = route.partition("/")
    return (provider, model) if sep and model else (None, route)


def gen_ai_provider(provider: str) -> str:
    """`gen_ai.provider.name` for a LiteLLM provider key: `bedrock` -> `aws.bedrock`; other keys as they are."""
    return _GEN_AI.get(provider, provider)


def openinference_provider(provider: str) -> str:
    """`llm.provider` for a LiteLLM provider key: `bedrock` -> `aws`; other keys as they are."""
    return _OPENINFERENCE.get(provider, provider)
