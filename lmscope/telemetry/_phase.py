"""What the program is doing: optimizing (inside a compile), evaluating (inside `dspy.Evaluate`), or serving.

The phase lives in the OpenTelemetry context, so it follows the work into DSPy's worker threads (the DSPy
instrumentation re-attaches the launching context there) and asyncio tasks. Every span lmscope starts and every
metric point it records carries it (`lmscope.phase`): dashboards and reports separate what optimizing cost from
what serving costs. An evaluation run by an optimizer stays `optimize`: the compile is what it is spent on.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from . import _semconv as semconv
from ._memo import BoundedMemo

_KEY = otel_context.create_key("lmscope-phase")


def current_phase(ctx: Mapping[Any, Any] | None = None) -> str:
    """The phase in force in `ctx` (default: the current context)."""
    phase = (otel_context.get_current() if ctx is None else ctx).get(_KEY)
    return phase if type(phase) is str else semconv.PHASE_SERVE


def with_phase(phase: str, ctx: Context) -> Context:
    """`ctx` entering `phase`; unchanged when a compile is already under way (its evaluations are optimizing)."""
    if ctx.get(_KEY) == semconv.PHASE_OPTIMIZE or ctx.get(_KEY) == phase:
        return ctx
    return otel_context.set_value(_KEY, phase, ctx)


def phase_attributes(phase: str) -> Mapping[str, str]:
    """`{lmscope.phase: phase}`, one shared read-only mapping per phase: a span waiting for export keeps no copy."""
    return _phase_attributes(phase)


_phase_attributes: BoundedMemo[str, Mapping[str, str]] = BoundedMemo(
    lambda phase: MappingProxyType({semconv.PHASE: phase}), 64)
