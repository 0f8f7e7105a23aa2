"""Context interop with OpenInference, both ways, with real DSPy against the stand-in LM server.

OpenInference's `using_session`/`using_user`/`using_metadata`/`using_tags`/`using_attributes` put their values on
lmscope's spans as `lmscope.context` does; `lmscope.context` makes them visible to OpenInference
(`get_attributes_from_context()`, which its instrumentors call at span start). The innermost block wins.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import dspy
import pytest
from openinference.instrumentation import (
    get_attributes_from_context,
    using_attributes,
    using_metadata,
    using_session,
    using_tags,
    using_user,
)

import lmscope
from lmscope import semconv
from lmscope.telemetry import _context_attributes
from lmscope.telemetry._context_attributes import context_attributes

SPANS_PER_CALL = 7
"""One `rag` call: rag, rag.rewrite + its LM span, rag.retrieve, rag.answer, rag.answer.predict + its LM span."""
CONTEXT_KEYS = (semconv.SESSION_ID, semconv.USER_ID, semconv.TAG_TAGS, semconv.METADATA)


def context_of(span):
    return {key: span.attributes[key] for key in CONTEXT_KEYS if key in span.attributes}


def openinference_sees():
    return dict(get_attributes_from_context())


def ask(rag, unique, n=1):
    return [rag(question=f"What is the capital of France? {unique} {i}") for i in range(n)]


def test_openinference_blocks_put_their_values_on_lmscope_spans(spans, make_lm, rag, unique):
    dspy.configure(lm=make_lm())
    with using_session("s-oi"), using_user("u-oi"), using_metadata({"b": 2, "a": "x"}), using_tags(["t1", "t2"]):
        ask(rag, unique)
    finished = spans()
    assert len(finished) == SPANS_PER_CALL
    for span in finished:
        assert context_of(span) == {semconv.SESSION_ID: "s-oi", semconv.USER_ID: "u-oi",
                                    semconv.TAG_TAGS: ("t1", "t2"), semconv.METADATA: '{"a": "x", "b": 2}'}, span.name


def test_using_attributes_and_worker_threads(spans, make_lm, rag, unique):
    dspy.configure(lm=make_lm())
    with using_attributes(session_id="s-2", user_id="u-2", metadata={"run": 1}, tags=["batch"]):
        rag.batch([dspy.Example(question=f"q {unique} {i}").with_inputs("question") for i in range(3)],
                  num_threads=3, disable_progress_bar=True)
    finished = spans()
    assert len(finished) == 3 * SPANS_PER_CALL + 1  # and the batch span
    assert {json.dumps(context_of(span), sort_keys=True) for span in finished} == {json.dumps(
        {semconv.SESSION_ID: "s-2", semconv.USER_ID: "u-2", semconv.TAG_TAGS: ["batch"],
         semconv.METADATA: '{"run": 1}'}, sort_keys=True)}


def test_lmscope_context_is_seen_by_openinference():
    assert openinference_sees() == {}
    with lmscope.context(session_id="s-1", user_id="u-1", tags=["a"], metadata={"k": 1}):
        assert openinference_sees() == {semconv.SESSION_ID: "s-1", semconv.USER_ID: "u-1", semconv.TAG_TAGS: ["a"],
                                        semconv.METADATA: '{"k": 1}'}
        with lmscope.context(tags=["b"], metadata={"j": 2}):
            assert openinference_sees() == {semconv.SESSION_ID: "s-1", semconv.USER_ID: "u-1",
                                            semconv.TAG_TAGS: ["a", "b"], semconv.METADATA: '{"j": 2, "k": 1}'}
        assert openinference_sees()[semconv.TAG_TAGS] == ["a"]
    assert openinference_sees() == {}


def test_lmscope_context_reaches_openinference_in_worker_threads(spans, make_lm, rag, unique):
    """What an OpenInference instrumentor running beside lmscope reads at its span's start, in DSPy's workers."""
    seen = []
    lock = threading.Lock()

    class Seen(dspy.Module):
        def __init__(self):
            super().__init__()
            self.inner = rag

        def forward(self, question):
            with lock:
                seen.append(openinference_sees())
            return self.inner(question=question)

    dspy.configure(lm=make_lm())
    with lmscope.context(session_id="s-3", tags=["t"]):
        Seen().batch([dspy.Example(question=f"q {unique} {i}").with_inputs("question") for i in range(2)],
                     num_threads=2, disable_progress_bar=True)
    assert seen == [{semconv.SESSION_ID: "s-3", semconv.TAG_TAGS: ["t"]}] * 2
    assert all(context_of(span) == {semconv.SESSION_ID: "s-3", semconv.TAG_TAGS: ("t",)} for span in spans())


def test_innermost_block_wins_lmscope_inside_openinference(spans, make_lm, rag, unique):
    """An lmscope block extends the OpenInference block around it as nested lmscope blocks do: session and user
    replaced, tags added, metadata keys merged. OpenInference then sees the same values."""
    dspy.configure(lm=make_lm())
    with using_attributes(session_id="s-out", user_id="u-out", tags=["oi"], metadata={"a": 1, "b": 1}):
        with lmscope.context(session_id="s-in", tags=["lm"], metadata={"b": 2}):
            expected = {semconv.SESSION_ID: "s-in", semconv.USER_ID: "u-out", semconv.TAG_TAGS: ["oi", "lm"],
                        semconv.METADATA: '{"a": 1, "b": 2}'}
            assert openinference_sees() == expected
            ask(rag, unique)
        assert openinference_sees()[semconv.SESSION_ID] == "s-out"
    for span in spans():
        assert context_of(span) == {**expected, semconv.TAG_TAGS: ("oi", "lm")}, span.name


def test_innermost_block_wins_openinference_inside_lmscope(spans, make_lm, rag, unique):
    """An OpenInference block replaces the values it sets, as it does among its own blocks; the rest stays."""
    dspy.configure(lm=make_lm())
    with lmscope.context(session_id="s-out", user_id="u-out", tags=["lm"], metadata={"a": 1}):
        with using_session("s-in"), using_tags(["oi"]):
            ask(rag, unique, 1)
        ask(rag, unique + "-after", 1)
    finished = sorted(spans(), key=lambda span: span.start_time)
    assert len(finished) == 2 * SPANS_PER_CALL
    inner = {semconv.SESSION_ID: "s-in", semconv.USER_ID: "u-out", semconv.TAG_TAGS: ("oi",),
             semconv.METADATA: '{"a": 1}'}
    outer = {semconv.SESSION_ID: "s-out", semconv.USER_ID: "u-out", semconv.TAG_TAGS: ("lm",),
             semconv.METADATA: '{"a": 1}'}
    assert [context_of(span) for span in finished] == [inner] * SPANS_PER_CALL + [outer] * SPANS_PER_CALL


def test_three_levels_lmscope_openinference_lmscope():
    with lmscope.context(user_id="u", tags=["a"]), using_tags(["b"]), lmscope.context(tags=["c"], metadata={"m": 1}):
        assert dict(context_attributes() or {}) == {semconv.USER_ID: "u", semconv.TAG_TAGS: ("b", "c"),
                                                    semconv.METADATA: '{"m": 1}'}
        assert openinference_sees() == {semconv.USER_ID: "u", semconv.TAG_TAGS: ["b", "c"],
                                        semconv.METADATA: '{"m": 1}'}


def test_openinference_metadata_is_scrubbed_on_lmscope_spans(traced, make_lm, rag, unique):
    from lmscope.telemetry._content import ContentPolicy

    finished = traced(ContentPolicy())
    dspy.configure(lm=make_lm())
    with using_metadata({"api_key": "sk-live-abcdefghijklmnopqrstuvwx", "run": 1}):
        ask(rag, unique)
    for span in finished():
        metadata = json.loads(span.attributes[semconv.METADATA])
        assert metadata["run"] == 1 and "abcdefghijklmnop" not in span.attributes[semconv.METADATA], span.name
        assert span.attributes[semconv.SCRUBBED] is True


def test_per_span_reads_are_cheap():
    """No block: nothing merged. An lmscope block alone: its precomputed attributes, the same object every span.
    An OpenInference block inside: merged once, then reused while the context stays the same."""
    assert context_attributes() is None
    with lmscope.context(session_id="s"):
        first = context_attributes()
        assert first is context_attributes()
        with using_user("u"):
            merged = context_attributes()
            assert merged is context_attributes()
            assert dict(merged or {}) == {semconv.SESSION_ID: "s", semconv.USER_ID: "u"}
        assert context_attributes() is first
    with using_session("only-oi"):
        assert context_attributes() is context_attributes()


def test_values_that_are_not_strings_are_coerced_not_raised(monkeypatch, caplog):
    monkeypatch.setattr(_context_attributes, "_warned", set())
    with using_attributes(tags=["ok", 3], metadata={"k": 1}):  # OpenInference does not check tag types
        assert dict(context_attributes() or {})[semconv.TAG_TAGS] == ("ok", "3")
    with using_metadata({"k": 1}), using_attributes(metadata=None):
        assert dict(context_attributes() or {})[semconv.METADATA] == '{"k": 1}'


def test_import_lmscope_does_not_import_openinference_instrumentation():
    code = ("import sys, lmscope\n"
            "with lmscope.context(session_id='s'):\n"
            "    lmscope.telemetry._context_attributes.context_attributes()\n"
            "assert 'openinference.instrumentation' not in sys.modules, 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture(autouse=True)
def _no_stale_merge(monkeypatch):
    monkeypatch.setattr(_context_attributes, "_last_merged", None)
