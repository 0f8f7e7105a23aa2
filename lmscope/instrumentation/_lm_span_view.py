"""What runs inside an LM call sees of lmscope's LM span: its identity, not its attributes; and no other
instrumentation.

Inside an LM call lmscope's LM span is the current span, so whatever the library starts there is its child. But
code in there also writes to "the current span": LiteLLM's own OpenTelemetry callback (`litellm.callbacks =
["otel"]`), finding a current span, puts its ~100 attributes (`gen_ai.*` tokens and cost, request metadata, content)
and status on it instead of a span of its own (`litellm/integrations/opentelemetry.py`, `_handle_success` /
`_handle_failure`). It does so from a logging thread, before or after lmscope ended the span, so lmscope's
attributes would be overwritten in some runs and not others (and the SDK logs "Setting attribute on ended span" in
the others). The context therefore carries a read-only view of the span: the same SpanContext (children, samplers
and propagation see lmscope's span), a `NonRecordingSpan` to writers.

Other instrumentations (OpenInference's LiteLLM one, HTTP clients) stand down inside the call through OTel's
standard suppression, as inside `suppress_instrumentation()`: one LM span per LM call, whatever else is on. lmscope's
own LiteLLM spans look past it inside a DSPy LM call, for the calls that are not DSPy's own request
(`litellm/_in_dspy_lm.py`), and keep it on inside them.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, set_span_in_context

from ..telemetry._one_step_context import SUPPRESSED, with_span


def with_lm_span(span: Span, ctx: Context) -> Context:
    """`ctx` with `span` current as other code sees it: its SpanContext, and no attribute, event or status set."""
    return set_span_in_context(_view(span), ctx)


def lm_call_context(span: Span, ctx: Context, entries: Mapping[str, object]) -> Context:
    """The context inside an LM call: `ctx` with other instrumentations suppressed, `span` current as a read-only
    view (`with_lm_span`), and lmscope's own `entries`. One context, made in one step, attached once for the call."""
    return with_span(_view(span), ctx, SUPPRESSED, entries)


def _view(span: Span) -> NonRecordingSpan:
    return NonRecordingSpan(span.get_span_context())
