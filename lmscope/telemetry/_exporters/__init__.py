"""Span exporters and processors lmscope ships: OTLP/JSON file, console tree, plain OTLP, and the Jaeger, Langfuse,
MLflow and Phoenix presets (one module each, named like its exporter option; default endpoints in `endpoints`)."""
