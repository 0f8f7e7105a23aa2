"""The `otlp` exporter: plain OTLP to a collector, over http/protobuf, gRPC or http/json (the `jaeger` preset
reuses it).

Each exporter class is imported when one is built, never at module import: it pulls in its transport (requests,
or grpcio, which is an optional install), which a console-only run never needs.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

from .._options import DEFAULT, ConfigError, Options


def otlp_span_exporter(options: Options) -> SpanExporter:
    """An OTLP span exporter for `options.otlp_protocol`, sending to `options.otlp_endpoint`.

    Headers, timeout, compression and certificates come from OTEL_EXPORTER_OTLP_* through the exporter
    itself; with no endpoint it also reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT.
    """
    return otlp_exporter_for(options, "otlp_protocol", options.otlp_protocol, options.otlp_endpoint)


def otlp_exporter_for(options: Options, protocol_option: str, protocol: str, endpoint: str | None) -> SpanExporter:
    """A plain OTLP exporter over `protocol`; `protocol_option` names the option in a ConfigError."""
    if protocol == "grpc":
        exporter = grpc_exporter_class("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter",
                                       protocol_option, options.sources.get(protocol_option, DEFAULT))
        span_exporter: SpanExporter = exporter(endpoint=endpoint)
        return span_exporter
    if protocol == "http/json":
        from .otlp_json_http import OtlpJsonHttpSpanExporter

        return OtlpJsonHttpSpanExporter(endpoint=_http_traces_url(endpoint))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=_http_traces_url(endpoint))


def grpc_exporter_class(module: str, name: str, option: str, source: str) -> type:
    """Class `name` of the gRPC exporter `module` (spans or metrics), or a ConfigError on `option` with the pip
    command: the gRPC exporter is an optional install (grpcio is large)."""
    try:
        exporter_module = importlib.import_module(module)
    except ImportError:
        raise ConfigError.for_option(
            option, "'grpc' needs the gRPC exporter, which is not installed", source,
            "http/protobuf, http/json, or grpc after pip install opentelemetry-exporter-otlp-proto-grpc") from None
    exporter_class: type = getattr(exporter_module, name)
    return exporter_class


def _http_traces_url(endpoint: str | None) -> str | None:
    """Append /v1/traces to a bare endpoint, as the OTel spec does for OTEL_EXPORTER_OTLP_ENDPOINT."""
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)
    return parts._replace(path="/v1/traces").geturl() if parts.path in ("", "/") else endpoint
