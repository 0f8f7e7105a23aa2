"""Provider names as each convention spells them, from a LiteLLM-style `provider/model` route."""

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
    return _GEN_AI.get(provider, provider)


def openinference_provider(provider: str) -> str:
    return _OPENINFERENCE.get(provider, provider)
