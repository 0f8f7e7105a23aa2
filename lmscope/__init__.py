"""lmscope: OpenTelemetry spans, tokens and cost for DSPy and LiteLLM programs.

    import lmscope
    lmscope.instrument()                      # console trees by default; exporters=["file", "otlp"], ...
    with lmscope.context(session_id="s-1"):
        program(question="...")
    with lmscope.track() as usage:
        program.batch(examples)
    usage.by_model()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import semconv
from ._instrument import Instrumentation, active, force_flush, instrument, uninstrument
from ._version import __version__
from .telemetry._context_attributes import context
from .telemetry._options import ConfigError
from .telemetry._scrub_match import ScrubMatch
from .telemetry._usage import Usage
from .telemetry._usage import track as _track

__all__ = ["ConfigError", "Instrumentation", "ScrubMatch", "Usage", "__version__", "active", "context", "force_flush",
           "instrument", "semconv", "track", "uninstrument"]


@contextmanager
def track() -> Iterator[Usage]:
    """Count every LM call in the block (thread pools, tasks and cache hits included) by model."""
    if active() is None and not _instrumented_by_entry_points():
        raise RuntimeError("lmscope.track() counts the LM calls lmscope instruments: call lmscope.instrument() first")
    with _track() as usage:
        yield usage


def _instrumented_by_entry_points() -> bool:
    """lmscope's instrumentors are on without `instrument()`: `opentelemetry-instrument` ran their entry points."""
    from .instrumentation.dspy import DSPyInstrumentor
    from .instrumentation.litellm import LiteLLMInstrumentor

    return bool(DSPyInstrumentor().is_instrumented_by_opentelemetry
                or LiteLLMInstrumentor().is_instrumented_by_opentelemetry)
