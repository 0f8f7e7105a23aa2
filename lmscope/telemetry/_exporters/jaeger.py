"""The `jaeger` preset: plain OTLP to Jaeger's own receiver (Jaeger v2 speaks OTLP natively).

Endpoint precedence, first that is set: the `jaeger_endpoint` argument > LMSCOPE_JAEGER_ENDPOINT >
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT > OTEL_EXPORTER_OTLP_ENDPOINT > `[tool.lmscope] jaeger_endpoint` > Jaeger's
default port for the protocol (4318 for http/protobuf, 4317 for grpc). Over http/protobuf, an endpoint from
OTEL_EXPORTER_OTLP_ENDPOINT always gets `/v1/traces` appended (the OTel spec's rule for the generic variable,
the one the `otlp` exporter follows); any other endpoint is used as given, except that one without a path gets
`/v1/traces`. Headers, compression, timeout and certificates come from OTEL_EXPORTER_OTLP_*, as with the `otlp`
exporter; Jaeger needs no attribute mapping, so spans go out exactly as recorded.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter

from .._options import Options
from .endpoints import JAEGER_OTLP_GRPC_ENDPOINT, JAEGER_OTLP_HTTP_ENDPOINT
from .otlp import otlp_exporter_for

_GENERIC_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""A base URL for every signal: the spec appends the signal's path to it, whatever path it already has."""


def jaeger_endpoint(options: Options) -> str:
    """The endpoint the preset sends to (an http/protobuf one without a path still gets `/v1/traces`)."""
    if options.jaeger_endpoint is None:
        return JAEGER_OTLP_GRPC_ENDPOINT if options.jaeger_protocol == "grpc" else JAEGER_OTLP_HTTP_ENDPOINT
    if options.jaeger_protocol != "grpc" and options.sources.get("jaeger_endpoint") == _GENERIC_ENDPOINT_ENV:
        return options.jaeger_endpoint.rstrip("/") + "/v1/traces"
    return options.jaeger_endpoint


def jaeger_span_exporter(options: Options) -> SpanExporter:
    return otlp_exporter_for(options, "jaeger_protocol", options.jaeger_protocol, jaeger_endpoint(options))
