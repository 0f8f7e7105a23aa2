"""Internal: OpenTelemetry plumbing that knows nothing of DSPy or LiteLLM (options, providers, exporters, names)."""
