"""What runs inside an LM call sees of lmscope's LM span: its identity, not its attributes.

Inside an LM call lmscope's LM span is the current span, so whatever the library starts there is its child. But
code in there also writes to "the current span": LiteLLM's own OpenTelemetry callback (`litellm.callbacks =
["otel"]`), finding a current span, puts its ~100 attributes (`gen_ai.*` tokens and cost, request metadata, content)
and status on it instead of a span of its own (`litellm/integrations/opentelemetry.py`, `_handle_success` /
`_handle_failure`). It does so from a logging thread, before or after lmscope ended the span, so lmscope's
attributes would be overwritten in some runs and not others (and the SDK logs "Setting attribute on ended span" in
the others). The context therefore carries a read-only view of the span: the same SpanContext (children, samplers
and propagation see lmscope's span), a `NonRecordingSpan` to writers.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, set_span_in_context


def with_lm_span(span: Span, ctx: Context) -> Context:
    """`ctx` with `span` current as other code sees it: its SpanContext, and no attribute, event or status set."""
    return set_span_in_context(NonRecordingSpan(span.get_span_context()), ctx)
