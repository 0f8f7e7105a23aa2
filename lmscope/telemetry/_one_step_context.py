"""Contexts made in one step, with the entries OpenTelemetry's public calls would put in them.

`opentelemetry.context.set_value` copies the whole context twice for each key it sets (`copy()`, then `Context(...)`),
and `set_span_in_context` is one such call: a span start that makes its span current and records lmscope's frame
would copy the call's context four times, on every span. The keys those calls use are private to OpenTelemetry, so
they are learned once, by making the entries in an empty context with the public calls, and a call's context is then
built as one dict, and the current span read with one lookup (`span_in`). Nothing is named that the API keeps to
itself; if a release ever stores a span otherwise (more than one entry), both fall back to the public calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import INVALID_SPAN, Span, get_current_span, set_span_in_context


def _suppression_entries() -> dict[str, object]:
    """What `suppress_instrumentation()` puts in a context: entering the context manager per call (a generator, an
    attach, a detach) costs ~3 µs where building the call's context with these entries in one step costs nothing."""
    token = otel_context.attach(Context())
    try:
        with suppress_instrumentation():
            return dict(otel_context.get_current())
    finally:
        otel_context.detach(token)


def _span_key() -> str | None:
    """The one key `set_span_in_context` stores a span under, or None if it stores anything else."""
    entries = set_span_in_context(INVALID_SPAN, Context())
    if len(entries) != 1:
        return None
    key, value = next(iter(entries.items()))
    return key if value is INVALID_SPAN else None


SUPPRESSED: Final = _suppression_entries()
"""The entries of `suppress_instrumentation()`: what `is_instrumentation_enabled()` reads (one of them set: off)."""
_SPAN_KEY: Final = _span_key()
_NOTHING: Mapping[str, object] = MappingProxyType({})


def with_span(span: Span, ctx: Context, entries: Mapping[str, object],
              more: Mapping[str, object] = _NOTHING) -> Context:
    """`set_span_in_context(span, ctx)` with `entries` and then `more` set too, made as one dict."""
    if _SPAN_KEY is None:
        return set_span_in_context(span, Context({**ctx, **entries, **more}))
    return Context({**ctx, **entries, **more, _SPAN_KEY: span})


def span_in(ctx: Context | None) -> Span:
    """`trace.get_current_span(ctx)`, read with one lookup (the API makes three calls for it)."""
    if _SPAN_KEY is None:
        return get_current_span(ctx)
    span = (otel_context.get_current() if ctx is None else ctx).get(_SPAN_KEY)
    return span if isinstance(span, Span) else INVALID_SPAN


def instrumentation_suppressed(ctx: Mapping[str, object]) -> bool:
    """`not is_instrumentation_enabled()` for `ctx`, read from the one context (the API looks it up once per key)."""
    if ctx.keys().isdisjoint(SUPPRESSED):  # the common case, told in C: no suppression key at all
        return False
    for key in SUPPRESSED:  # noqa: SIM110 - a loop, not any() over a generator: this runs on every span
        if ctx.get(key):
            return True
    return False
