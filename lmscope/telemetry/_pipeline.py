"""Which span processors the resolved options ask for: one per exporter name."""

from __future__ import annotations

import sys
from typing import Callable

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from ._options import NO_EXPORT, Options
from ._tracer_provider import batch_processor, otlp_span_exporter


def _console(options: Options) -> SpanProcessor:
    from ._exporters.console import ConsoleTreeProcessor

    return ConsoleTreeProcessor(sys.stdout if options.console_stream == "stdout" else None)


# Exporters, each imported only when asked for: a backend's transport is not loaded for a console run.

def _file(options: Options) -> SpanExporter:
    from ._exporters.otlp_json import OtlpJsonFileExporter

    return OtlpJsonFileExporter(options.file_path)


def _jaeger(options: Options) -> SpanExporter:
    from ._exporters.jaeger import jaeger_span_exporter

    return jaeger_span_exporter(options)


def _langfuse(options: Options) -> SpanExporter:
    from ._exporters.langfuse import langfuse_span_exporter

    return langfuse_span_exporter(options)


def _mlflow(options: Options) -> SpanExporter:
    from ._exporters.mlflow import mlflow_span_exporter

    return mlflow_span_exporter(options)


_BATCHED: dict[str, Callable[[Options], SpanExporter]] = {
    "file": _file, "otlp": otlp_span_exporter, "jaeger": _jaeger, "langfuse": _langfuse, "mlflow": _mlflow}


def _processor(name: str, options: Options) -> SpanProcessor:
    if name == "console":
        return _console(options)
    # Named by its option name, so log lines and the drop report say "jaeger", not an exporter class.
    return batch_processor(_BATCHED[name](options), options, name=name)


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
