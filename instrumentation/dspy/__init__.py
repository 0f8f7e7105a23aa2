"""DSPy instrumentation."""
