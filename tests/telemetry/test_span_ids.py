"""lmscope's span and trace ids: from a generator of its own (tests/instrumentation/test_random_state.py checks that
the app's `random` sequence is left alone), never the invalid id 0."""

from __future__ import annotations

import random

import pytest

from lmscope.telemetry._span_ids import PrivateRandomIdGenerator


class _ZeroFirst(random.Random):
    """A generator whose first draws are 0, the id OpenTelemetry calls invalid."""

    def __init__(self, zeros: int) -> None:
        super().__init__(7)
        self.zeros = zeros

    def getrandbits(self, k: int) -> int:
        if self.zeros:
            self.zeros -= 1
            return 0
        return super().getrandbits(k)


@pytest.mark.parametrize("zeros", [0, 1, 3])
def test_an_id_of_zero_is_drawn_again(zeros: int) -> None:
    generator = PrivateRandomIdGenerator()
    generator._random = _ZeroFirst(zeros)
    span_id = generator.generate_span_id()
    generator._random = _ZeroFirst(zeros)
    trace_id = generator.generate_trace_id()
    assert 0 < span_id < 2**64 and 0 < trace_id < 2**128
    assert span_id == random.Random(7).getrandbits(64)
    assert trace_id == random.Random(7).getrandbits(128)
