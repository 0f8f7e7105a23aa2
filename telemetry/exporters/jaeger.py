"""The `jaeger` preset: plain OTLP to Jaeger's own receiver (Jaeger v2 speaks OTLP natively).

Endpoint precedence, first that is set: the `jaeger_endpoint` argument > LMSCOPE_JAEGER_ENDPOINT >
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT > OTEL_EXPORTER_OTLP_ENDPOINT > `[tool.lmscope] jaeger_endpoint` > Jaeger's
default port for the protocol (4318 for http/protobuf, 4317 for grpc). An http/protobuf endpoint without a
path gets `/v1/traces`. Headers, compression, timeout and certificates come from OTEL_EXPORTER_OTLP_*, as
with the `otlp` exporter; Jaeger needs no attribute mapping, so spans go out exactly as recorded.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter

from ..options import Options
from ..providers import otlp_exporter_for
from .endpoints import JAEGER_OTLP_GRPC_ENDPOINT, JAEGER_OTLP_HTTP_ENDPOINT


def jaeger_endpoint(options: Options) -> str:
    """The endpoint the preset sends to (before `/v1/traces` is added for http/protobuf)."""
    if options.jaeger_endpoint is not None:
        return options.jaeger_endpoint
    return JAEGER_OTLP_GRPC_ENDPOINT if options.jaeger_protocol == "grpc" else JAEGER_OTLP_HTTP_ENDPOINT


def jaeger_span_exporter(options: Options) -> SpanExporter:
    return otlp_exporter_for(options, "jaeger_protocol", options.jaeger_protocol, jaeger_endpoint(options))
