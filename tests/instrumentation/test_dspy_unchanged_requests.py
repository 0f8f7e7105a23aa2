"""Tracing changes nothing the LM sees: with lmscope on, every request the stand-in LM server receives is
byte-identical to the same program's requests without lmscope, a ReAct tool that raises included (DSPy sends the
failing tool's last traceback frames to the LM, so a wrapper frame of lmscope's would change the prompt, the cache
key and leak lmscope's install path)."""

from __future__ import annotations

import sys
from typing import Any

import dspy
import pytest
from test_dspy_cache_fidelity import instrumented

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 re-raises with the wrapper frame")


def lookup_population() -> str:
    """Look up the population of the city asked about."""
    raise ConnectionError("population service unreachable")


def _requests_of_one_run(lm_server: Any, make_lm: Any, question: str) -> list[bytes]:
    dspy.configure(lm=make_lm(cache=False))  # every step reaches the server, in both runs
    lm_server.recorded_bodies = []
    try:
        agent = dspy.ReAct("question -> answer", tools=[lookup_population], max_iters=2)
        agent(question=question)
        return list(lm_server.recorded_bodies)
    finally:
        lm_server.recorded_bodies = None


def test_a_raising_tool_sends_the_lm_the_same_bytes_traced_and_untraced(lm_server: Any, make_lm: Any,
                                                                         unique: str) -> None:
    question = f"How many people live in Lyon? {unique}"
    untraced = _requests_of_one_run(lm_server, make_lm, question)
    with instrumented() as spans:
        traced = _requests_of_one_run(lm_server, make_lm, question)
        tool_spans = [span for span in spans() if "lookup_population" in span.name]
    assert any(b"population service unreachable" in body for body in untraced)  # the error reached the LM
    assert b"lmscope" not in b"".join(untraced + traced)
    assert traced == untraced
    assert tool_spans and all(span.status.status_code.name == "ERROR" for span in tool_spans)
