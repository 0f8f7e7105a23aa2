"""`BoundedMemo`: each key computed once, and a full memo emptied rather than grown."""

from __future__ import annotations

import pytest

from lmscope.telemetry._memo import BoundedMemo


def test_a_key_is_computed_once_and_a_full_memo_starts_again_empty() -> None:
    computed: list[str] = []

    def shout(word: str) -> str:
        computed.append(word)
        return word.upper()

    memo = BoundedMemo(shout, limit=2)
    assert [memo("a"), memo("a"), memo("b"), memo("b")] == ["A", "A", "B", "B"]
    assert computed == ["a", "b"]
    assert memo("c") == "C"  # full: emptied, then "c" stored
    assert dict(memo) == {"c": "C"}
    assert memo("a") == "A"
    assert computed == ["a", "b", "c", "a"]


def test_a_failing_computation_stores_nothing() -> None:
    memo: BoundedMemo[int, float] = BoundedMemo(lambda key: 1 / key)
    with pytest.raises(ZeroDivisionError):
        memo(0)
    assert len(memo) == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="BoundedMemo limit must be at least 1, got 0"):
        BoundedMemo(str, limit=0)
