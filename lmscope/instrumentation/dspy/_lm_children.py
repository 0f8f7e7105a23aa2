"""LM calls counted inside a DSPy LM call, and when the DSPy LM span gives way to them.

The code that answers a DSPy LM call may itself make LM calls lmscope counts on spans of their own: a custom
`BaseLM` whose `forward` calls `litellm.completion` (once, or twice), a DSPy 3.4 custom engine doing so, a custom LM
calling another DSPy LM. Each is a child span of the DSPy LM span, counted where it ends (module roll-ups,
`track()`, metrics), and tells the DSPy LM call so (`LMFrame.add_child`). What the LM then returns to DSPy is their
answer, or made of it: counting it on the DSPy LM span as well would count those requests twice, and a custom LM
that returns plain text would be counted with no tokens at all.

So when calls were counted inside it before DSPy had its result, the DSPy LM span gives way: no usage or cost of its
own, their roll-up under `lmscope.*` keys as a module span has (`lmscope.usage.in_children`), and the span is not an
LM call for roll-ups, `track()`, metrics or `lmscope report`. That includes DSPy's own request when the LM's code made
it through `LM.forward` (`super().forward(...)`: a DSPy LM span of its own, `_forward_requests.py`), a cache hit of
DSPy's there too. The span keeps its own count when DSPy made the request itself for this call (on LiteLLM, or its
native engine) or DSPy's cache answered it; calls counted inside it then are extra ones, and so are calls counted after
DSPy had the result, whatever made the request. A DSPy callback's calls (`on_lm_start`, `on_lm_end` calling LiteLLM or
another DSPy LM: `_callers.called_from_callback`) are always extra ones, never how the LM answers.
"""

from __future__ import annotations

from ._frames import LMFrame


def gives_way(frame: LMFrame) -> bool:
    """Whether the DSPy LM span of `frame` leaves its call's usage to the LM calls counted inside it: they were
    counted before DSPy had the result, DSPy did not make this call's request itself, and its cache did not answer
    the call (unless through `LM.forward`, which the LM's code called: the hit is counted on that request's span)."""
    return frame.requests_in_children > 0 and not frame.dspy_requested and not _on_dspy_engine(frame) \
        and (frame.forwarded or not getattr(frame.result, "cache_hit", False))


def _on_dspy_engine(frame: LMFrame) -> bool:
    """DSPy 3.4 sent the request on one of its own engines: the call was managed (`PreparedCall.managed`: a `dspy.LM`
    whose `forward`/`aforward` DSPy's own are) and the LM's engine is named by a string (`auto`, `lm15`, `litellm`;
    a custom engine is an object). Its native engine calls no LiteLLM, so `dspy_requested` cannot say so there
    (docs/dspy-internals.md §4). DSPy 3.0-3.3 have no `PreparedCall`: their `dspy.LM` always asks LiteLLM."""
    return getattr(frame.call, "managed", False) is True and isinstance(getattr(frame.lm, "_engine_spec", None), str)
