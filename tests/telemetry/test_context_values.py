"""`lmscope.context(...)` with values that cannot become attributes as given: coerced, warned once, never raised."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import lmscope
from lmscope.telemetry import _context_attributes
from lmscope.telemetry._content import ContentPolicy
from lmscope.telemetry._context_attributes import context_attributes


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_context_attributes, "_warned", set())


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "StrRaises()"


class BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "BrokenMapping()"


def attributes_of(**kwargs: Any) -> dict[str, Any]:
    with lmscope.context(**kwargs):
        found = context_attributes()
    return dict(found or {})


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "lmscope"]


@pytest.mark.parametrize(("kwargs", "expected", "warnings"), [
    ({"session_id": 42, "user_id": StrRaises()}, {"session.id": "42", "user.id": "StrRaises()"}, [
        "lmscope.context: session_id must be a string, got int; recorded as its text",
        "lmscope.context: user_id must be a string, got StrRaises; recorded as its text"]),
    ({"user_id": Unprintable()}, {"user.id": "<unprintable Unprintable>"},
     ["lmscope.context: user_id must be a string, got Unprintable; recorded as its text"]),
    ({"tags": "prod"}, {"tag.tags": ("prod",)},
     ["lmscope.context: tags must be a list of strings, got one string; recorded as a one-tag list"]),
    ({"tags": ["a", 1, None, "a"]}, {"tag.tags": ("a", "1", "None")},
     ["lmscope.context: tags must be strings; a tag of another type is recorded as its text"]),
    ({"tags": 7}, {"tag.tags": ("7",)}, [
        "lmscope.context: tags must be a list of strings, got int; recorded as a list of its items' text",
        "lmscope.context: tags must be strings; a tag of another type is recorded as its text"]),
    ({"metadata": "run-7"}, {"metadata": '{"value": "run-7"}'},
     ['lmscope.context: metadata must be a mapping, got str; recorded as {"value": ...}']),
    ({"metadata": ["a", 1]}, {"metadata": '{"value": ["a", 1]}'},
     ['lmscope.context: metadata must be a mapping, got list; recorded as {"value": ...}']),
    # Mixed key types: json.dumps(sort_keys=True) raises TypeError on them; JSON's own spelling of each key.
    ({"metadata": {1: "one", "b": 2, None: 3, 2.5: 4}},
     {"metadata": '{"1": "one", "2.5": 4, "b": 2, "null": 3}'}, []),
    ({"metadata": {("x", 1): "tuple key"}}, {"metadata": '{"(\'x\', 1)": "tuple key"}'},
     ["lmscope.context: metadata keys must be strings, numbers, booleans or None; another key is recorded as its "
      "text"]),
    ({"metadata": {"obj": StrRaises(), "odd": Unprintable()}},
     {"metadata": '{"obj": "StrRaises()", "odd": "<unprintable Unprintable>"}'}, []),
    ({"metadata": {"broken": BrokenMapping()}}, {"metadata": '{"broken": "BrokenMapping()"}'},
     ["lmscope.context: metadata holds a mapping or list that cannot be read; it is recorded as its text"]),
])
def test_bad_values_are_coerced_and_warned_about(caplog: pytest.LogCaptureFixture, kwargs: dict[str, Any],
                                                 expected: dict[str, Any], warnings: list[str]) -> None:
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert attributes_of(**kwargs) == expected
        assert attributes_of(**kwargs) == expected  # the second block warns no more
    assert messages(caplog) == warnings


def test_circular_metadata_is_broken_once_per_repeat(caplog: pytest.LogCaptureFixture) -> None:
    metadata: dict[str, Any] = {"name": "loop", "shared": [1]}
    metadata["self"] = metadata
    metadata["again"] = metadata["shared"]  # the same list twice, not a cycle: both copies kept
    inner: list[Any] = ["x"]
    inner.append(inner)
    metadata["list"] = inner
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        recorded = attributes_of(metadata=metadata)
    assert json.loads(recorded["metadata"]) == {"name": "loop", "shared": [1], "again": [1],
                                                "self": "[circular reference]", "list": ["x", "[circular reference]"]}
    assert messages(caplog) == [
        "lmscope.context: metadata refers to itself; the repeated reference is recorded as '[circular reference]'"]


def test_nesting_merges_coerced_values() -> None:
    with lmscope.context(session_id=1, tags=("a",), metadata={1: "x"}), \
            lmscope.context(tags=["b", 2], metadata={"k": {3: "y"}}):
        found = dict(context_attributes() or {})
    assert found == {"session.id": "1", "tag.tags": ("a", "b", "2"), "metadata": '{"1": "x", "k": {"3": "y"}}'}


def test_good_values_are_unchanged_and_silent(caplog: pytest.LogCaptureFixture) -> None:
    import datetime

    day = datetime.date(2026, 1, 2)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        found = attributes_of(session_id="s", user_id="u", tags=["t"], metadata={"b": 1, "a": [day], "c": None})
    assert found == {"session.id": "s", "user.id": "u", "tag.tags": ("t",),
                     "metadata": '{"a": ["2026-01-02"], "b": 1, "c": null}'}
    assert messages(caplog) == []
    assert attributes_of(tags=[], metadata={}) == {}


def test_a_content_policy_still_scrubs_and_cuts_coerced_metadata() -> None:
    policy = ContentPolicy(max_chars=60)
    secret = "sk-" + "A" * 40
    with lmscope.context(metadata={"api_key": secret, 1: "x" * 100}):
        recorded = dict(context_attributes(policy=policy) or {})
    assert secret not in recorded["metadata"]
    assert recorded["lmscope.scrubbed"] is True
    assert recorded["metadata"].startswith('{"1": "xxx')
    assert "truncated" in recorded["metadata"]
