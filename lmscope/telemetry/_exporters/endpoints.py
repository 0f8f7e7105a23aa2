"""Where each backend preset sends spans when nothing says otherwise: the ports `docker-compose.yml` opens.

Plain constants with no imports, so options, presets, docs and the compose-file test all read one source.
"""

from __future__ import annotations

from typing import Final

JAEGER_OTLP_HTTP_ENDPOINT: Final = "http://localhost:4318"
"""Jaeger's OTLP/HTTP receiver (http/protobuf); spans are posted to `/v1/traces` under it."""
JAEGER_OTLP_GRPC_ENDPOINT: Final = "http://localhost:4317"
"""Jaeger's OTLP/gRPC receiver, used when `jaeger_protocol` is `grpc`."""

LANGFUSE_DEFAULT_HOST: Final = "https://cloud.langfuse.com"
"""The Langfuse SDK's own default base URL (a self-hosted server is named by LANGFUSE_HOST/LANGFUSE_BASE_URL)."""
LANGFUSE_OTLP_TRACES_PATH: Final = "/api/public/otel/v1/traces"

MLFLOW_DEFAULT_TRACKING_URI: Final = "http://localhost:5000"
"""`mlflow server`'s default port; OTLP is served by that server only (not by a file or database store)."""
MLFLOW_OTLP_TRACES_PATH: Final = "/v1/traces"

PHOENIX_DEFAULT_ENDPOINT: Final = "http://localhost:6006"
"""`phoenix serve`'s default HTTP port, and the default of Phoenix's own client (phoenix.otel) when
PHOENIX_COLLECTOR_ENDPOINT is unset."""
PHOENIX_OTLP_TRACES_PATH: Final = "/v1/traces"
"""Where Phoenix takes OTLP/HTTP, under its base URL (and under a Phoenix Cloud space's `/s/<space>` prefix)."""
