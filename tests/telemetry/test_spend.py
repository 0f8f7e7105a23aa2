"""`Spend`, the one accumulator behind module roll-ups, `lmscope.track()` and `lmscope report`.

Costs are binary fractions so every sum is exact and compared with `==`.
"""

from __future__ import annotations

from span_attributes import lm_attributes

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._lm_call import LMCall
from lmscope.telemetry._report import lm_call_of_span
from lmscope.telemetry._spend import Spend


def _call(cost_usd: float | None, *, cache_hit: bool = False, saved_usd: float | None = None) -> LMCall:
    tokens = 0 if cache_hit else 10
    return LMCall("gpt-4o-mini", "openai", input_tokens=tokens, output_tokens=tokens // 2, cached_tokens=tokens // 5,
                  cost_usd=cost_usd, cache_hit=cache_hit, saved_usd=saved_usd)


def test_known_prices_are_summed_and_unknown_ones_counted_never_as_zero() -> None:
    spend = Spend()
    spend.add_call(_call(0.25))
    spend.add_call(_call(None))
    spend.add_call(_call(0.0, cache_hit=True, saved_usd=0.5))
    spend.add_call(_call(0.0, cache_hit=True, saved_usd=None))  # a hit on a call whose price was unknown
    assert spend == Spend(calls=4, input_tokens=20, output_tokens=10, cached_tokens=4, cost_usd=0.25,
                          cache_hits=2, saved_usd=0.5, unpriced_calls=1, unpriced_hits=1)


def test_adding_groups_equals_adding_their_calls() -> None:
    calls = [_call(0.25), _call(None), _call(0.0, cache_hit=True, saved_usd=0.125), _call(0.5)]
    one, first, second = Spend(), Spend(), Spend()
    for index, call in enumerate(calls):
        one.add_call(call)
        (first if index % 2 else second).add_call(call)
    first.add(second)
    first.add(Spend())  # an empty group changes nothing
    assert first == one


def test_an_lm_span_reads_as_the_call_it_records() -> None:
    priced = lm_call_of_span(lm_attributes("gpt-4o", 100, 10, cached_tokens=30, cost=0.25))
    assert (priced.model, priced.input_tokens, priced.output_tokens, priced.cached_tokens, priced.cost_usd) \
        == ("gpt-4o", 100, 10, 30, 0.25)
    hit = lm_call_of_span(lm_attributes("gpt-4o", 0, 0, cost=0.0, **{semconv.CACHE_HIT: True,
                                                                      semconv.CACHE_SAVED_USD: 0.5}))
    assert (hit.cache_hit, hit.cost_usd, hit.saved_usd) == (True, 0.0, 0.5)
    # Unpriced: no cost (lmscope then writes lmscope.cost.unknown), or the flag next to a cost (another producer).
    assert lm_call_of_span(lm_attributes("gpt-4o", 5, 1)).cost_usd is None
    flagged = lm_call_of_span({**lm_attributes("gpt-4o", 5, 1, cost=0.25), semconv.COST_UNKNOWN: True})
    assert flagged.cost_usd is None
    # No model attribute at all: still a call, under a name that says so.
    assert lm_call_of_span({semconv.SPAN_KIND: semconv.KIND_LLM}).model == "(unknown model)"
