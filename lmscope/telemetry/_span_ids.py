"""Span and trace ids drawn from a random generator of lmscope's own, never from the `random` module's shared one.

The SDK's default `RandomIdGenerator` draws every id from `random`'s global state, so each span lmscope started moved
the app's seeded sequence on: after `random.seed(0)`, a traced LiteLLM call left the app other numbers than an
untraced one (and LiteLLM's Router, which picks a deployment with `random`, asked another deployment). lmscope's own
provider uses this generator instead, and so do lmscope's tracers on the app's provider when that provider has the
SDK's default one (a generator the app chose, AWS X-Ray's or Logfire's, is the app's format and stays).
"""

from __future__ import annotations

import os
import random

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator


class PrivateRandomIdGenerator(IdGenerator):
    """`RandomIdGenerator`'s ids, from a `random.Random` of its own: seeded by the OS, and again in a forked child
    (as `random`'s global generator is), so that a parent and its children never draw the same ids."""

    def __init__(self) -> None:
        self._random = random.Random()
        if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
            os.register_at_fork(after_in_child=self._random.seed)

    # Drawn here, and again in `_nonzero` only for the invalid id 0 (once in 2**64): one call less on every span.
    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or self._nonzero(64)

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or self._nonzero(128)

    def is_trace_id_random(self) -> bool:
        return True

    def _nonzero(self, bits: int) -> int:
        value = self._random.getrandbits(bits)
        while value == 0:  # the invalid id
            value = self._random.getrandbits(bits)
        return value


ID_GENERATOR = PrivateRandomIdGenerator()
"""One per process: registering a fork hook per generator would keep each alive for good."""


def with_private_ids(tracer: trace.Tracer) -> trace.Tracer:
    """`tracer` (an app provider's, handed to lmscope alone) drawing its ids from `ID_GENERATOR` when it would draw
    them from `random`'s global state."""
    if type(getattr(tracer, "id_generator", None)) is RandomIdGenerator:
        tracer.id_generator = ID_GENERATOR  # type: ignore[attr-defined]  # an SDK Tracer's public attribute
    return tracer
