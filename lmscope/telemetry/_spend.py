"""`Spend`: what a group of LM calls consumed, summed from `LMCall`s.

One accumulator behind the module-span roll-ups and `lmscope.track()`, so the two cannot disagree.
Not thread-safe by itself: callers hold their own lock.
"""

from __future__ import annotations

from ._lm_call import LMCall


class Spend:
    __slots__ = ("calls", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "cache_hits", "saved_usd",
                 "unpriced_calls", "unpriced_hits")

    def __init__(self) -> None:
        self.calls = self.input_tokens = self.output_tokens = self.cached_tokens = 0
        self.cache_hits = self.unpriced_calls = self.unpriced_hits = 0
        self.cost_usd = self.saved_usd = 0.0
        """Known cost only: calls without a price are counted in `unpriced_calls`, never as 0."""

    def add_call(self, call: LMCall) -> None:
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cached_tokens += call.cached_tokens
        if call.cache_hit:
            self.cache_hits += 1
            if call.saved_usd is None:  # the original call's price was unknown: so is what the hit saved
                self.unpriced_hits += 1
            else:
                self.saved_usd += call.saved_usd
        if call.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += call.cost_usd

    def copy(self) -> Spend:
        """A snapshot (the instance's class, so a subclass's methods stay)."""
        copied = type(self).__new__(type(self))
        copied.calls, copied.input_tokens, copied.output_tokens = self.calls, self.input_tokens, self.output_tokens
        copied.cached_tokens, copied.cost_usd, copied.cache_hits = self.cached_tokens, self.cost_usd, self.cache_hits
        copied.saved_usd, copied.unpriced_calls, copied.unpriced_hits = self.saved_usd, self.unpriced_calls, \
            self.unpriced_hits
        return copied

    def add(self, other: Spend) -> None:
        if not other.calls:  # every field only grows in add_call, which counts the call: all zero
            return
        # Spelled out rather than a loop over __slots__ with getattr/setattr: this runs once per module span.
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd
        self.cache_hits += other.cache_hits
        self.saved_usd += other.saved_usd
        self.unpriced_calls += other.unpriced_calls
        self.unpriced_hits += other.unpriced_hits
