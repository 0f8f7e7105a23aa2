"""Which span processors the resolved options ask for: one per exporter name, each exporter behind a batch
processor (the console tree prints whole traces, so it is a processor of its own)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from opentelemetry.sdk.environment_variables import OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from ._batch_export import BatchExportProcessor
from ._options import NO_EXPORT, Options, warn_ignored_variable

# The SDK's defaults for OTEL_BSP_MAX_EXPORT_BATCH_SIZE and OTEL_BSP_SCHEDULE_DELAY.
_DEFAULT_EXPORT_BATCH_SIZE = 512
_DEFAULT_SCHEDULE_DELAY_MS = 5000


def _console(options: Options) -> SpanProcessor:
    from ._exporters.console import ConsoleTreeProcessor

    return ConsoleTreeProcessor(sys.stdout if options.console_stream == "stdout" else None)


# Exporters, each imported only when asked for: a backend's transport is not loaded for a console run.

def _file(options: Options) -> SpanExporter:
    from ._exporters.otlp_json import OtlpJsonFileExporter

    return OtlpJsonFileExporter(options.file_path)


def _otlp(options: Options) -> SpanExporter:
    from ._exporters.otlp import otlp_span_exporter

    return otlp_span_exporter(options)


def _jaeger(options: Options) -> SpanExporter:
    from ._exporters.jaeger import jaeger_span_exporter

    return jaeger_span_exporter(options)


def _langfuse(options: Options) -> SpanExporter:
    from ._exporters.langfuse import langfuse_span_exporter

    return langfuse_span_exporter(options)


def _mlflow(options: Options) -> SpanExporter:
    from ._exporters.mlflow import mlflow_span_exporter

    return mlflow_span_exporter(options)


def _phoenix(options: Options) -> SpanExporter:
    from ._exporters.phoenix import phoenix_span_exporter

    return phoenix_span_exporter(options)


_BATCHED: dict[str, Callable[[Options], SpanExporter]] = {
    "file": _file, "otlp": _otlp, "jaeger": _jaeger, "langfuse": _langfuse, "mlflow": _mlflow, "phoenix": _phoenix}


def _processor(name: str, options: Options) -> SpanProcessor:
    if name == "console":
        return _console(options)
    # Named by its option name, so log lines and the drop report say "jaeger", not an exporter class.
    return batch_processor(_BATCHED[name](options), options, name=name)


def batch_processor(exporter: SpanExporter, options: Options, *, name: str | None = None) -> BatchExportProcessor:
    """A batch processor whose queue holds at most `options.max_queue_size` spans (see _batch_export.py).

    OTEL_BSP_MAX_EXPORT_BATCH_SIZE and OTEL_BSP_SCHEDULE_DELAY keep their meaning; a batch never exceeds
    the queue. `name` labels the exporter in log lines (build_span_processors sets the exporter's option name).
    """
    return BatchExportProcessor(
        exporter, max_queue_size=options.max_queue_size,
        max_export_batch_size=_env_positive_int(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, _DEFAULT_EXPORT_BATCH_SIZE),
        schedule_delay_millis=_env_positive_int(OTEL_BSP_SCHEDULE_DELAY, _DEFAULT_SCHEDULE_DELAY_MS), name=name)


def _env_positive_int(name: str, default: int) -> int:
    """A standard variable's positive integer; a value that is not one is warned about once and the default used."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value > 0:
        return value
    warn_ignored_variable(name, raw, "not a positive integer", f"the SDK's default {default}")
    return default


def build_span_processors(options: Options) -> list[SpanProcessor]:
    """One processor per exporter; each gets every span. A ConfigError leaves no processor thread behind."""
    processors: list[SpanProcessor] = []
    try:
        for name in options.exporters:
            if name != NO_EXPORT:
                processors.append(_processor(name, options))
    except BaseException:
        for processor in processors:
            processor.shutdown()
        raise
    return processors
