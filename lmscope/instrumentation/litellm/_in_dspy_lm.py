"""A LiteLLM call made inside a DSPy LM call: DSPy's own request, or a call of code DSPy runs there.

Inside lmscope's DSPy LM span OpenTelemetry's instrumentation is suppressed (`_lm_span_view.py`), so that DSPy's own
LiteLLM request (`dspy.LM` on LiteLLM) is not a second span of the same call: the DSPy LM span is the request's. But
the program's code runs there too: a custom `BaseLM`'s `forward`, a DSPy 3.4 custom engine, a DSPy callback's
`on_lm_start` / `on_lm_end`. The LiteLLM calls it makes are requests DSPy's span does not see: each is a LiteLLM span
of its own, a child of the DSPy LM span (which then gives way to them or not: `dspy/_lm_children.py`), other
instrumentations still suppressed inside it.

Told apart by who calls LiteLLM: DSPy's own request is made by DSPy's code (`dspy/clients/lm.py` on every release,
`dspy/clients/engines/litellm_engine.py` from 3.4; docs/dspy-internals.md §4), so the nearest frame above lmscope's
wrapper, past the wrappers other instrumentations put around LiteLLM's functions, is in a module `dspy` or `dspy.*`.
The stack is read (never changed), a frame or two, and only inside a DSPy LM call.

LiteLLM calls its own patched functions on behalf of a call (fallbacks, `completion_with_retries` after a failure, the
deployments of `model_list`, from its own code, tenacity's or a thread pool's): on behalf of DSPy's request they are
not the program's calls, and run in a context that says so (`DSPyRequest`), where they stay untraced, as those inside
a traced LiteLLM call do.
"""

from __future__ import annotations

import sys
from contextvars import Token

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from .._callers import called_from_callback, caller_module, is_dspy
from ..dspy._frames import FRAME_KEY, OWN_SUPPRESSION_KEY, LMFrame


class DSPyRequest:
    """The LiteLLM call DSPy makes for its LM call's request: no span (the DSPy LM span is the request's). It runs in
    a context that holds this object where a traced LiteLLM call holds its frame (`_spans._CALL_KEY`), so the calls
    LiteLLM makes on its behalf stay untraced."""

    __slots__ = ("token",)

    def __init__(self, ctx: Context, call_key: str) -> None:
        """Attach `ctx` with this request under `call_key` (`_spans._CALL_KEY`): made current for the call."""
        self.token: Token[Context] = otel_context.attach(Context({**ctx, call_key: self}))

    def leave(self) -> None:
        """Put the caller's context back (when LiteLLM returns or raises)."""
        otel_context.detach(self.token)


def lm_call_open(ctx: Context, inside: object) -> LMFrame | None:
    """The DSPy LM call whose context `ctx` is, where a LiteLLM call is made by DSPy or is a child of its span.

    None elsewhere: outside DSPy LM calls, inside a LiteLLM call (`inside`: what `_spans._CALL_KEY` holds, a traced
    call's frame or a `DSPyRequest`) and under the app's `suppress_instrumentation()` outside lmscope's LM spans,
    where LiteLLM's calls stay untraced."""
    if inside is not None or ctx.get(OWN_SUPPRESSION_KEY) is not True:
        return None
    frame = ctx.get(FRAME_KEY)
    return frame if type(frame) is LMFrame else None


_NOT_LM_REQUESTS = frozenset({"dspy.clients.embedding"})
"""DSPy's modules that call LiteLLM for a request of their own, never an LM call's: `dspy.Embedder`'s hosted batches,
which a custom LM's code may embed with (docs/dspy-internals.md §4)."""


def made_by_dspy() -> bool:
    """Whether the code calling LiteLLM is DSPy's, making its LM call's request, seen from lmscope's LiteLLM wrapper:
    the caller (`_callers.caller_module`) is DSPy's and not one of `_NOT_LM_REQUESTS`."""
    name = caller_module(sys._getframe(1))
    return is_dspy(name) and name not in _NOT_LM_REQUESTS


def made_by_callback() -> bool:
    """Whether a LiteLLM call inside a DSPy LM call is a DSPy callback's (`on_lm_start`, `on_lm_end`): the nearest frame
    of `dspy.utils.callback` above this one runs callbacks, not the LM's call. Such a call is not the LM's request: the
    LM span counts its own answer beside it (`dspy/_lm_children.py`)."""
    return called_from_callback(sys._getframe(1))
