"""Span exporters and processors lmscope ships: OTLP/JSON file, console tree."""
