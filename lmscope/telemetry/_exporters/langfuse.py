"""The `langfuse` preset: OTLP/HTTP to Langfuse's OTel endpoint, with the attributes its ingestion maps.

Where it sends: `{langfuse_host}/api/public/otel/v1/traces`, `langfuse_host` being the argument >
LMSCOPE_LANGFUSE_HOST > LANGFUSE_BASE_URL > LANGFUSE_HOST > pyproject > the host of the one Langfuse client the
app already created (wherever the keys came from) > https://cloud.langfuse.com.
Credentials: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, else
the keys of the one `langfuse.Langfuse(...)` client the app set up (the package is read only if the app
imported it). Headers are those the Langfuse SDK sends: Basic auth, the public key, the SDK name and version
(naming lmscope) and `x-langfuse-ingestion-version: 4` (real-time ingestion); bodies are gzipped, as the SDK does.

What Langfuse reads (its OtelIngestionProcessor): `langfuse.observation.type` first, so every lmscope span
says what it is; usage from `langfuse.observation.usage_details` in Langfuse's own usage types (cached prompt
tokens apart from the rest, so its price table does not bill them at the full rate); cost from
`langfuse.observation.cost_details`; `session.id`, `user.id` as recorded; tags and metadata under
`langfuse.trace.*`. Module spans carry no model or usage key, so Langfuse neither prices nor sums them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any, NamedTuple

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.sdk.trace.export import SpanExporter

from .. import _semconv as semconv
from .._options import DEFAULT, ConfigError, Options
from .._url_masking import mask_url
from .endpoints import LANGFUSE_OTLP_TRACES_PATH
from .otlp_http import pinned_otlp_http_exporter
from .span_rewrite import AttributeAddingExporter

PUBLIC_KEY_ENV = "LANGFUSE_PUBLIC_KEY"
SECRET_KEY_ENV = "LANGFUSE_SECRET_KEY"

OBSERVATION_TYPE = "langfuse.observation.type"
USAGE_DETAILS = "langfuse.observation.usage_details"
COST_DETAILS = "langfuse.observation.cost_details"
TRACE_TAGS = "langfuse.trace.tags"
TRACE_METADATA = "langfuse.trace.metadata"

# OpenInference kinds lmscope writes -> Langfuse observation types (the same pairs Langfuse's mapper uses).
_OBSERVATION_TYPES = {
    semconv.KIND_LLM: "generation",
    semconv.KIND_CHAIN: "chain",
    semconv.KIND_RETRIEVER: "retriever",
    semconv.KIND_TOOL: "tool",
    semconv.KIND_AGENT: "agent",
    semconv.KIND_EVALUATOR: "evaluator",
}


class LangfuseTarget(NamedTuple):
    host: str
    public_key: str
    secret_key: str

    def __repr__(self) -> str:  # the secret key never reaches a log line through a repr
        return f"LangfuseTarget(host={mask_url(self.host)!r}, public_key={self.public_key!r}, secret_key='***')"


def _app_client_settings() -> tuple[str, str, str] | None:
    """(public key, secret key, base URL) of the single Langfuse client the app created, if it created one."""
    if "langfuse" not in sys.modules:  # never import the package for the app
        return None
    try:
        from langfuse._client.resource_manager import LangfuseResourceManager

        instances = list(LangfuseResourceManager._instances.values())
    except Exception:  # noqa: BLE001 - another SDK version: fall back to the environment's conventions
        return None
    # Several clients are several projects: picking one would send spans to the wrong one.
    if len(instances) != 1:
        return None
    client = instances[0]
    values = (getattr(client, "public_key", None), getattr(client, "secret_key", None),
              getattr(client, "base_url", None))
    return values if all(isinstance(value, str) and value for value in values) else None  # type: ignore[return-value]


def langfuse_target(options: Options) -> LangfuseTarget:
    """Host and keys, or a ConfigError naming what is missing (never a key's value)."""
    public_key = os.environ.get(PUBLIC_KEY_ENV, "").strip()
    secret_key = os.environ.get(SECRET_KEY_ENV, "").strip()
    host = options.langfuse_host
    if (client := _app_client_settings()) is not None:
        if not (public_key or secret_key):
            public_key, secret_key = client[0], client[1]
        if not options.given("langfuse_host"):  # the app's client knows its region even when the keys are in env
            host = client[2]
    missing = [name for name, value in ((PUBLIC_KEY_ENV, public_key), (SECRET_KEY_ENV, secret_key)) if not value]
    if missing:
        raise ConfigError.for_option(
            "exporters", f"'langfuse' needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not set", options.sources.get("exporters", DEFAULT),
            f"set {PUBLIC_KEY_ENV} and {SECRET_KEY_ENV} (a project's API keys), or create a langfuse.Langfuse(...) "
            "client before lmscope.instrument()")
    return LangfuseTarget(host.rstrip("/"), public_key, secret_key)


def _lmscope_version() -> str:
    # From the installed distribution: telemetry does not import the lmscope package above it.
    try:
        return metadata.version("lmscope")
    except metadata.PackageNotFoundError:
        return "unknown"


def langfuse_headers(target: LangfuseTarget) -> dict[str, str]:
    token = base64.b64encode(f"{target.public_key}:{target.secret_key}".encode()).decode("ascii")
    return {
        "Authorization": f"Basic {token}",
        "x-langfuse-sdk-name": "lmscope",
        "x-langfuse-sdk-version": _lmscope_version(),
        "x-langfuse-public-key": target.public_key,
        "x-langfuse-ingestion-version": "4",
    }


def _usage_details(attributes: Mapping[str, Any]) -> dict[str, int]:
    """OTel usage (cached and reasoning tokens inside input and output) -> Langfuse's disjoint usage types."""
    input_tokens, output_tokens, cached, reasoning = (
        int(value) if _is_number(value := attributes.get(key, 0)) else 0
        for key in (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
                    semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))
    details = {"input": input_tokens - cached, "output": output_tokens - reasoning,
               "total": input_tokens + output_tokens}
    if cached:
        details["input_cached_tokens"] = cached
    if reasoning:
        details["output_reasoning_tokens"] = reasoning
    return details


_USAGE_KEY_PREFIXES = ("gen_ai.usage.", "llm.token_count.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unreadable_usage(attributes: Mapping[str, Any]) -> dict[str, None]:
    """Usage keys whose value is not a number, marked for removal: Langfuse's ingestion parses them as numbers and
    rejects the whole request over one bad value (the app's own spans, on a shared provider, can carry anything)."""
    return {key: None for key, value in attributes.items() if key.startswith(_USAGE_KEY_PREFIXES)
            and not _is_number(value)}


def langfuse_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The keys Langfuse needs on top of a span's own attributes (None: a key to leave out of Langfuse's copy)."""
    extra: dict[str, Any] = _unreadable_usage(attributes)
    kind = attributes.get(semconv.SPAN_KIND)
    # Spans without an OpenInference kind (the app's own, on a shared provider) keep Langfuse's own mapping.
    if kind in _OBSERVATION_TYPES:
        extra[OBSERVATION_TYPE] = _OBSERVATION_TYPES[kind]
    if kind == semconv.KIND_LLM and _is_number(attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)):
        extra[USAGE_DETAILS] = json.dumps(_usage_details(attributes))
        cost = attributes.get(semconv.GEN_AI_USAGE_COST)
        if _is_number(cost):  # a cache hit's 0.0 too: Langfuse must not price it from the token counts
            extra[COST_DETAILS] = json.dumps({"total": cost})
    if tags := attributes.get(semconv.TAG_TAGS):
        extra[TRACE_TAGS] = tuple(tags)
    if metadata := attributes.get(semconv.METADATA):
        extra[TRACE_METADATA] = metadata  # already a JSON object string, which Langfuse parses
    return extra


def langfuse_span_exporter(options: Options) -> SpanExporter:
    target = langfuse_target(options)
    exporter = pinned_otlp_http_exporter(target.host + LANGFUSE_OTLP_TRACES_PATH, langfuse_headers(target),
                                         compression=Compression.Gzip)
    return AttributeAddingExporter(exporter, langfuse_attributes)
