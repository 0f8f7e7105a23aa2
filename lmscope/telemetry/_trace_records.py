"""`SpanRecord`: a finished span as plain values, whether read from a trace file or taken from the SDK."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import _semconv as semconv

# The figures the tree and the report add up. A file may hold other producers' spans: a value of the wrong
# type under one of these keys (a cost sent as a string, a NaN) is read as absent rather than crash or poison
# a sum.
_NUMBERS: frozenset[str] = frozenset({
    semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_COST, semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHED_TOKENS,
    semconv.COST_TOTAL_USD, semconv.LM_CALLS, semconv.CACHE_HITS, semconv.CACHE_SAVED_USD,
    semconv.CACHE_SAVED_TOTAL_USD, semconv.BATCH_INDEX,
})


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits."""
    parent_span_id: str | None
    """None for a root span."""
    name: str
    kind: str
    """INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER (or UNSPECIFIED)."""
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    """Plain Python values; arrays are tuples, as the SDK stores them."""
    status_code: str = "UNSET"
    """UNSET, OK or ERROR."""
    status_message: str = ""
    events: tuple[EventRecord, ...] = ()
    resource: dict[str, Any] = field(default_factory=dict)
    """The resource's attributes (service.name, ...)."""
    remote_parent: bool = field(default=False, compare=False)
    """The parent is in another process (OTLP span flags): this span is its process's root of the trace."""
    line: int = field(default=0, compare=False)
    """The trace file line it was read from (1-based), for messages; 0 for a span taken from the SDK."""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def numbers_checked(attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` without the summed figures that are not finite numbers."""
    wrong = [key for key in _NUMBERS.intersection(attributes) if not _is_number(attributes[key])]
    for key in wrong:
        del attributes[key]
    return attributes


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
