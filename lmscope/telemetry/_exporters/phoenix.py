"""The `phoenix` preset: OTLP/HTTP to Arize Phoenix's `/v1/traces`, filed under one Phoenix project.

Where it sends, read as Phoenix's own client (phoenix.otel) reads it: `phoenix_endpoint` (argument >
LMSCOPE_PHOENIX_ENDPOINT > PHOENIX_COLLECTOR_ENDPOINT > pyproject > http://localhost:6006) is Phoenix's base URL,
and `/v1/traces` is added to its path unless the path already ends with it (so a Phoenix Cloud space URL
`https://app.phoenix.arize.com/s/<space>` gets `/s/<space>/v1/traces`).

Project: PHOENIX_PROJECT_NAME, sent as the resource attribute `openinference.project.name` (what Phoenix files a
span under, and what phoenix.otel's `register()` sets), on this preset's copies only: the file, console and other
backends keep lmscope's resource. Without the variable the resource goes as it is, so a project set through
OTEL_RESOURCE_ATTRIBUTES still counts, and otherwise Phoenix uses its `default` project.

Auth: PHOENIX_API_KEY as `authorization: Bearer <key>`, the header phoenix.otel sends (a key with whitespace or
control characters is a ConfigError that does not show it); nothing else is forwarded (not
OTEL_EXPORTER_OTLP_HEADERS, a collector's key). Phoenix reads lmscope's OpenInference attributes as they are
(span kind, `llm.token_count.*`, `session.id`, `input.value`), so spans need no mapping.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace.export import SpanExporter

from .. import _semconv as semconv
from .._options import DEFAULT, ConfigError, Options
from .endpoints import PHOENIX_OTLP_TRACES_PATH
from .otlp_http import pinned_otlp_http_exporter
from .span_rewrite import ResourceAddingExporter

API_KEY_ENV = "PHOENIX_API_KEY"
PROJECT_NAME_ENV = "PHOENIX_PROJECT_NAME"


def phoenix_traces_url(endpoint: str) -> str:
    """Phoenix's base URL -> its OTLP/HTTP traces URL; a URL that already ends with `/v1/traces` stays as given."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if not path.endswith(PHOENIX_OTLP_TRACES_PATH):
        path += PHOENIX_OTLP_TRACES_PATH
    return urlunsplit(parts._replace(path=path))


def phoenix_headers(options: Options) -> dict[str, str]:
    """Phoenix's client's auth header, or none; a key that cannot be a header value is a ConfigError at instrument()
    (sent anyway, requests would reject it on every export with an error message that quotes it)."""
    api_key = os.environ.get(API_KEY_ENV, "").strip()
    if any(char.isspace() or not char.isprintable() for char in api_key):
        raise ConfigError.for_option(
            "exporters", f"'phoenix': {API_KEY_ENV} holds whitespace or control characters",
            options.sources.get("exporters", DEFAULT),
            "an API key as Phoenix shows it, or none for a server without auth")
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def phoenix_project() -> str | None:
    return os.environ.get(PROJECT_NAME_ENV, "").strip() or None


def phoenix_span_exporter(options: Options) -> SpanExporter:
    url, headers = phoenix_traces_url(options.phoenix_endpoint), phoenix_headers(options)
    exporter: SpanExporter = pinned_otlp_http_exporter(url, headers)
    project = phoenix_project()
    return ResourceAddingExporter(exporter, {semconv.PROJECT_NAME: project}) if project else exporter
