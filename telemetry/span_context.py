"""A context that carries a new current span plus a few values, made in one copy instead of one per value.

`set_value(k2, v2, set_span_in_context(span, ctx))` copies the whole context twice per call (once to a dict,
once into a new `Context`), so a span start that also sets its frame (and, for an LM call, the suppression
flag) pays four to six copies. `with_span(ctx, span, values)` makes the same `Context` with one merge. It relies
on OTel's `_SPAN_KEY` and on `Context` being a dict; at import it checks that the result equals the chained
calls and otherwise uses them.
"""

from __future__ import annotations

from typing import Any, Mapping

from opentelemetry.context import Context, create_key, set_value
from opentelemetry.trace import INVALID_SPAN, set_span_in_context

try:
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - an API without it: the chained calls below
    _SPAN_KEY = None


def _chained(ctx: Context, span: Any, values: Mapping[str, Any]) -> Context:
    ctx = set_span_in_context(span, ctx)
    for key, value in values.items():
        ctx = set_value(key, value, ctx)
    return ctx


def _merged(ctx: Context, span: Any, values: Mapping[str, Any]) -> Context:
    return Context({**ctx, _SPAN_KEY: span, **values})


def _merge_matches() -> bool:
    probe_key = create_key("lmscope-probe")
    before = Context({"outer": 1})
    try:
        made = _merged(before, INVALID_SPAN, {probe_key: 2})
    except Exception:  # noqa: BLE001
        return False
    return _SPAN_KEY is not None and type(made) is Context and made == _chained(before, INVALID_SPAN, {probe_key: 2})


with_span = _merged if _merge_matches() else _chained
"""with_span(ctx, span, {key: value, ...}) -> `ctx` with `span` current and the values set."""
