"""Reading captured content back from finished spans (scrubbing and content-limit tests)."""

from __future__ import annotations

from typing import Any

from lmscope.telemetry import _semconv as semconv


def by_name(finished: Any, name: str) -> Any:
    (span,) = [s for s in finished if s.name == name]
    return span


def lm_span(finished: Any) -> Any:
    (span,) = [s for s in finished if s.name.startswith(semconv.LM_SPAN_NAME_PREFIX)]
    return span


def everything_recorded(finished: Any) -> str:
    """Every attribute, event attribute and status text of every span, as one string."""
    parts = []
    for span in finished:
        parts.extend(str(value) for value in span.attributes.values())
        for event in span.events:
            parts.extend(str(value) for value in event.attributes.values())
        parts.append(str(span.status.description))
    return "\n".join(parts)
