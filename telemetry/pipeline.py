"""Which span processors the resolved options ask for: one per exporter name."""

from __future__ import annotations

import sys
from typing import Callable

from opentelemetry.sdk.trace import SpanProcessor

from .batch_export import BatchExportProcessor
from .options import Options
from .providers import batch_processor, otlp_span_exporter


def _console(options: Options) -> SpanProcessor:
    from .exporters.console import ConsoleTreeProcessor

    return ConsoleTreeProcessor(sys.stdout if options.console_stream == "stdout" else None)


def _file(options: Options) -> SpanProcessor:
    from .exporters.otlp_json import OtlpJsonFileExporter

    return batch_processor(OtlpJsonFileExporter(options.file_path), options)


def _otlp(options: Options) -> SpanProcessor:
    return batch_processor(otlp_span_exporter(options), options)


_FACTORIES: dict[str, Callable[[Options], SpanProcessor]] = {"console": _console, "file": _file, "otlp": _otlp}


def build_span_processors(options: Options) -> list[SpanProcessor]:
    processors = []
    for name in options.exporters:
        if name == "none":
            continue
        processor = _FACTORIES[name](options)
        if isinstance(processor, BatchExportProcessor):
            processor.exporter.name = name  # log lines and the drop report say "otlp", not a class name
        processors.append(processor)
    return processors
