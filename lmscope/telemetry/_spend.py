"""`Spend`: what a group of LM calls consumed, summed from `LMCall`s.

The one accumulator for tokens and money: module-span roll-ups, `lmscope.track()` and `lmscope report` all
sum with it, so they cannot disagree, and they use its field names (the `track()` dicts have them as keys).
Not thread-safe by itself: callers hold their own lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._lm_call import LMCall


@dataclass(slots=True)
class Spend:
    calls: int = 0
    """LM calls, DSPy cache hits among them."""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the provider read from its prompt cache (part of `input_tokens`)."""
    cost_usd: float = 0.0
    """Known cost only: calls without a price are counted in `unpriced_calls`, never as 0."""
    cache_hits: int = 0
    """Calls DSPy answered from its own cache: nothing billed."""
    saved_usd: float = 0.0
    """What the cache hits first cost, where that was known (the rest are counted in `unpriced_hits`)."""
    unpriced_calls: int = 0
    unpriced_hits: int = 0

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

    def add(self, other: Spend) -> None:
        """Add another group's figures (a child module's roll-up, one model's share of a total)."""
        if not other.calls:  # every field only grows in add_call, which counts the call: all zero
            return
        # Spelled out rather than a loop over the fields with getattr/setattr: this runs once per module span.
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd
        self.cache_hits += other.cache_hits
        self.saved_usd += other.saved_usd
        self.unpriced_calls += other.unpriced_calls
        self.unpriced_hits += other.unpriced_hits
