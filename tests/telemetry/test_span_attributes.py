"""`store_attributes` gives a span exactly what the SDK's `set_attributes` would, fast path or not.

Each case sets the same attributes on two real SDK spans, one through `store_attributes` and one through
`Span.set_attributes`, then compares what an exporter sees: items in order, dropped count, exported or not.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import Span, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN

from lmscope.telemetry._span_attributes import store_attributes

CLEAN = {"lmscope.module.path": "rag.answer", "lmscope.lm.calls": 2, "lmscope.cost.total_usd": 0.25,
         "lmscope.cache.hit": False, "gen_ai.response.finish_reasons": ("stop", "length"),
         "lmscope.settings.overrides": ("cache",), "scores": (1.5, 2.5), "flags": (True,)}


@pytest.fixture
def set_attributes_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call that reached the SDK's own `Span.set_attributes`."""
    calls: list[dict[str, Any]] = []
    original = Span.set_attributes

    def spy(self: Span, attributes: Any) -> None:
        calls.append(dict(attributes))
        original(self, attributes)

    monkeypatch.setattr(Span, "set_attributes", spy)
    return calls


def exported_pair(steps: list[dict[str, Any]], limits: SpanLimits | None = None, *, end_first: bool = False,
                  ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(ours, SDK's): the exported (items in order, dropped count) after the same attribute steps."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    ours, sdk = tracer.start_span("ours"), tracer.start_span("sdk")
    for span in (ours, sdk):
        span.set_attribute("set.by.app", "first")
        if end_first:
            span.end()
    for attributes in steps:
        store_attributes(ours, attributes)
        Span.set_attributes(sdk, attributes)
    for span in (ours, sdk):
        if not end_first:
            span.end()
    spans = {span.name: span for span in memory.get_finished_spans()}
    return tuple((list(spans[name].attributes.items()), spans[name].dropped_attributes) for name in ("ours", "sdk"))


def test_clean_values_skip_the_sdk_cleaning_and_land_the_same(set_attributes_calls):
    ours, sdk = exported_pair([CLEAN, {"lmscope.usage.input_tokens": 7}])
    assert ours == sdk
    assert ours[0][0] == ("set.by.app", "first") and ours[0][-1] == ("lmscope.usage.input_tokens", 7)
    # Only the SDK-side span went through set_attributes: our clean dicts took the fast path.
    assert len(set_attributes_calls) == 2


@pytest.mark.parametrize("value", [["a", "b"], None, ("a", 1), (), {"nested": 1}, object(), b"raw", [1.5, None]])
def test_values_the_sdk_must_clean_go_through_it(set_attributes_calls, value):
    ours, sdk = exported_pair([{"lmscope.module.class": "Predict", "odd": value}])
    assert ours == sdk
    assert len(set_attributes_calls) == 2  # ours fell back to set_attributes


def test_setting_a_key_again_moves_it_like_the_sdk_does():
    ours, sdk = exported_pair([{"a": 1, "b": 2}, {"c": 3, "a": 4}, {"set.by.app": "again"}])
    assert ours == sdk
    assert [key for key, _ in ours[0]] == ["b", "c", "a", "set.by.app"]


def test_count_limit_drops_the_oldest_like_the_sdk():
    ours, sdk = exported_pair([{"a": 1, "b": 2}, {"c": 3, "d": 4}], SpanLimits(max_span_attributes=3))
    assert ours == sdk
    assert ours[1] == 2


def test_value_length_limit_truncates_like_the_sdk():
    ours, sdk = exported_pair([{"input.value": "x" * 50, "n": 1}], SpanLimits(max_span_attribute_length=10))
    assert ours == sdk
    assert dict(ours[0])["input.value"] == "x" * 10


def test_an_ended_span_takes_nothing():
    ours, sdk = exported_pair([CLEAN], end_first=True)
    assert ours == sdk == ([("set.by.app", "first")], 0)


def test_spans_that_are_not_the_sdk_span_get_set_attributes():
    store_attributes(INVALID_SPAN, CLEAN)  # a non-recording span: its set_attributes is a no-op, no error
