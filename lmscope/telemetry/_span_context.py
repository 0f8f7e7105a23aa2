"""The OTel context on lmscope's hot path: a new current span plus a few values in one copy, and the current
context read, attached and detached without the API's two layers of calls.

`set_value(k2, v2, set_span_in_context(span, ctx))` copies the whole context twice per call (once to a dict,
once into a new `Context`), so a span start that also sets its frame (and, for an LM call, the suppression
flag) pays four to six copies. `with_span(ctx, span, key, value, ...)` makes the same `Context` with one copy. It relies
on OTel's `_SPAN_KEY` and on `Context` being a dict; at import it checks that the result equals the chained
calls and otherwise uses them.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry.context import Context, create_key, set_value
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, set_span_in_context

_context_logger = logging.getLogger("opentelemetry.context")  # where the API's detach logs its failures

try:
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - an API without it: the chained calls below
    _SPAN_KEY = None


def _chained(ctx: Context, span: Any, key: str, value: Any, key2: str | None = None, value2: Any = None) -> Context:
    ctx = set_value(key, value, set_span_in_context(span, ctx))
    return ctx if key2 is None else set_value(key2, value2, ctx)


_set_item = dict.__setitem__  # Context refuses item assignment; only a Context nobody has seen yet is filled so


def _merged(ctx: Context, span: Any, key: str, value: Any, key2: str | None = None, value2: Any = None) -> Context:
    made = Context(ctx)
    _set_item(made, _SPAN_KEY, span)
    _set_item(made, key, value)
    if key2 is not None:
        _set_item(made, key2, value2)
    return made


def _merge_matches() -> bool:
    probe_key = create_key("lmscope-probe")
    before = Context({"outer": 1})
    try:
        made = _merged(before, INVALID_SPAN, probe_key, 2, "other", 3)
    except Exception:  # noqa: BLE001
        return False
    return _SPAN_KEY is not None and type(made) is Context and made == _chained(before, INVALID_SPAN, probe_key, 2,
                                                                                   "other", 3)


with_span = _merged if _merge_matches() else _chained
"""with_span(ctx, span, key, value[, key2, value2]) -> `ctx` with `span` current and the values set."""


def _context_variable() -> ContextVar[Context] | None:
    """The ContextVar behind OTel's default runtime context (`contextvars_context`), if that is the one in use."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    return variable if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar) else None


_variable = _context_variable()
if _variable is not None:
    # `get_current()`, `attach(ctx)` and `detach(token)` are two Python calls each around these: per span, 3-4 of
    # them. The runtime context is chosen once, when opentelemetry.context is imported, so this holds.
    current_context: Callable[[], Context] = _variable.get
    attach: Callable[[Context], Token[Context]] = _variable.set
    _reset = _variable.reset

    def detach(token: Token[Context]) -> None:
        try:
            _reset(token)
        except Exception:  # noqa: BLE001 - as opentelemetry.context.detach: logged, never raised
            _context_logger.exception("Failed to detach context")
else:  # another runtime context (OTEL_PYTHON_CONTEXT): the API's own functions
    current_context, attach, detach = otel_context.get_current, otel_context.attach, otel_context.detach
