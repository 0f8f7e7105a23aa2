"""lmscope: OpenTelemetry spans, tokens and cost for DSPy and LiteLLM programs."""
