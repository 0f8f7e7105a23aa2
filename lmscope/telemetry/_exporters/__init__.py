"""Span exporters and processors lmscope ships: OTLP/JSON file, console tree, and the Jaeger, Langfuse and
MLflow presets (one module each; default endpoints in `endpoints`)."""
