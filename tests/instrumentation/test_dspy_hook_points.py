"""A DSPy lmscope was not written for: what can be found is traced, the rest is named once in a warning, no hook
point is left half-patched, and the app never sees an error. A DSPy newer than the tested releases is simulated by
reporting the installed one as 3.5 and taking away a hook target."""

from __future__ import annotations

import logging

import dspy
import pytest
from dspy_release import DSPY_VERSION

from lmscope.instrumentation._patching import Patcher
from lmscope.instrumentation.dspy import _hook_points
from lmscope.instrumentation.dspy._hook_points import HookPoint, install


class _Owner:
    def first(self) -> str:
        return "first"


def _wrap(name: str):
    def patch() -> None:
        patcher.replace(_Owner, name, lambda original: lambda self: "wrapped " + original(self))
    return patch


patcher = Patcher()


def test_a_way_that_finds_only_some_targets_leaves_nothing_patched_and_the_next_way_is_tried():
    original = vars(_Owner)["first"]

    def both() -> None:
        _wrap("first")()
        _wrap("second")()  # not there: AttributeError after `first` was patched

    untraced = install([HookPoint("both methods", [both])], patcher, (3, 4))
    assert untraced == ["both methods"] and vars(_Owner)["first"] is original

    untraced = install([HookPoint("first, another way", [both, _wrap("first")])], patcher, (3, 4))
    assert untraced == [] and _Owner().first() == "wrapped first"
    patcher.restore_all()
    assert vars(_Owner)["first"] is original


def test_a_hook_point_newer_than_the_release_is_skipped_quietly():
    assert install([HookPoint("later", [_wrap("missing")], since=(3, 3))], patcher, (3, 0)) == []
    assert install([HookPoint("later", [_wrap("missing")], since=(3, 3))], patcher, (3, 3)) == ["later"]


@pytest.fixture
def newer_dspy(monkeypatch):
    """DSPy reported as 3.5, without the JSON-adapter fallback hook; warnings of earlier tests forgotten. Returns
    `JSONAdapter.__call__` as it was before lmscope."""
    from dspy.adapters.chat_adapter import ChatAdapter
    from dspy.adapters.json_adapter import JSONAdapter

    import lmscope.instrumentation.dspy as instrumentation

    monkeypatch.setattr(instrumentation, "dspy_version", lambda: (3, 5))
    monkeypatch.setattr(_hook_points, "_warned", set())
    monkeypatch.delattr(ChatAdapter, "_make_json_adapter_fallback", raising=False)  # DSPy < 3.3 has none
    return vars(JSONAdapter)["__call__"]


def test_a_newer_dspy_is_traced_where_it_can_be_and_the_rest_named_once(newer_dspy, spans, make_lm, unique, tree,
                                                                       caplog):
    from dspy.adapters.json_adapter import JSONAdapter

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    # `spans` instrumented DSPy: the warning came then; instrumenting again says nothing new.
    warnings = [record for record in caplog.get_records("setup")
                if record.name == "lmscope" and record.levelno == logging.WARNING]
    [message] = [record.getMessage() for record in warnings]
    prefix = ("lmscope: DSPy 3.5 is outside the releases lmscope is tested with (3.0 to 3.4); traced what could be "
              "found, untraced: ")
    assert message.startswith(prefix)
    # DSPy's own retry loop too where the installed DSPy has none (before 3.4); GEPA's trials too where the GEPA this
    # DSPy pins has no callbacks (DSPy 3.0-3.2's)
    retries = ["failed LM requests DSPy sends again"] if DSPY_VERSION < (3, 4) else []
    assert message[len(prefix):].split("; ") in ([*retries, "the JSON adapter fallback"],
                                                 [*retries, "the JSON adapter fallback", "GEPA trials"])
    # The fallback's other targets (JSONAdapter's) are patched after the missing one: none of them is.
    assert vars(JSONAdapter)["__call__"] is newer_dspy

    dspy.configure(lm=make_lm())
    prediction = dspy.Predict("question -> answer")(question=f"Capital of Peru? {unique}")
    assert prediction.answer
    finished = spans()
    assert tree(finished) == [("predict", [("chat gpt-4o-mini", [])])]
    lm_span = next(span for span in finished if span.name == "chat gpt-4o-mini")
    assert lm_span.attributes["gen_ai.usage.input_tokens"] > 0

    DSPyInstrumentor().uninstrument()
    caplog.clear()
    DSPyInstrumentor().instrument(capture_content=False)
    DSPyInstrumentor().uninstrument()
    assert not [record for record in caplog.records if record.name == "lmscope"]
