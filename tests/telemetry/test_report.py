"""`lmscope report`: spend by model and module path, summed over LM spans only.

Costs are binary fractions (0.25, 0.125, ...) so every sum is exact and compared with `==`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context
from span_attributes import lm_attributes

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter
from lmscope.telemetry._report import Report, render_report, summarize
from lmscope.telemetry._spend import Spend
from lmscope.telemetry._trace_file import read_trace_file, records_from_spans
from lmscope.telemetry._tree import build_trees


def _module(path: str, **rollups: Any) -> dict[str, Any]:
    # Roll-ups deliberately disagree with the LM spans below them: a report that summed module spans
    # (double counting) would not match the expected numbers.
    return {semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.MODULE_PATH: path,
            semconv.USAGE_INPUT_TOKENS: 99_999, semconv.COST_TOTAL_USD: 64.0, semconv.LM_CALLS: 7, **rollups}


def _program(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")

    def span(name: str, parent: Any, attributes: dict[str, Any]) -> Any:
        return tracer.start_span(name, set_span_in_context(parent) if parent is not None else None,
                                 attributes=attributes)

    # Trace 1: rag -> rewrite -> LM;  rag -> answer -> (a tool span) -> LM, LM (cache hit), LM (unpriced, failed)
    rag = span("rag", None, _module("rag"))
    rewrite = span("rag.rewrite", rag, _module("rag.rewrite"))
    span("chat gpt-4o-mini", rewrite, lm_attributes("gpt-4o-mini", 100, 10, cost=0.25)).end()
    rewrite.end()
    answer = span("rag.answer", rag, _module("rag.answer"))
    # Not a module span (no lmscope.module.path): LM calls under it still belong to rag.answer.
    step = span("format", answer, {semconv.SPAN_KIND: semconv.KIND_TOOL})
    span("chat gpt-4o", step, lm_attributes("gpt-4o", 1000, 200, cached_tokens=300, cost=0.5)).end()
    step.end()
    span("chat gpt-4o", answer, lm_attributes("gpt-4o", 0, 0, cost=0.0, **{
        semconv.CACHE_HIT: True, semconv.CACHE_LAYER: "disk", semconv.CACHE_SAVED_USD: 0.5})).end()
    failed = span("chat mystery-model", answer, lm_attributes("mystery-model", 40, 0))
    failed.set_status(Status(StatusCode.ERROR, "RateLimitError: slow down"))
    failed.end()
    answer.end()
    rag.end()
    # Trace 2: a bare LM call outside any module, and a span that is neither LM nor module.
    span("chat gpt-4o-mini", None, lm_attributes("gpt-4o-mini", 7, 3, cost=0.125, **{
        semconv.CACHE_HIT: True, semconv.CACHE_LAYER: "memory", semconv.CACHE_SAVED_USD: 0.125})).end()
    span("retrieve", None, {semconv.SPAN_KIND: semconv.KIND_RETRIEVER}).end()


@pytest.fixture
def spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _program(provider)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_sums_lm_spans_by_model_and_nearest_module(spans: list[ReadableSpan]) -> None:
    report = summarize(records_from_spans(spans))

    assert report == Report(
        traces=3,
        by_model={
            "gpt-4o": Spend(calls=2, input_tokens=1000, output_tokens=200, cached_tokens=300, cost_usd=0.5,
                            cache_hits=1, saved_usd=0.5),
            "gpt-4o-mini": Spend(calls=2, input_tokens=107, output_tokens=13, cost_usd=0.375,
                                 cache_hits=1, saved_usd=0.125),
            "mystery-model": Spend(calls=1, input_tokens=40, unpriced_calls=1),
        },
        by_module={
            "rag.answer": Spend(calls=3, input_tokens=1040, output_tokens=200, cached_tokens=300, cost_usd=0.5,
                                cache_hits=1, saved_usd=0.5, unpriced_calls=1),
            "rag.rewrite": Spend(calls=1, input_tokens=100, output_tokens=10, cost_usd=0.25),
            "(no module)": Spend(calls=1, input_tokens=7, output_tokens=3, cost_usd=0.125,
                                 cache_hits=1, saved_usd=0.125),
        },
        total=Spend(calls=5, input_tokens=1147, output_tokens=213, cached_tokens=300, cost_usd=0.875,
                    cache_hits=2, saved_usd=0.625, unpriced_calls=1),
        # Spans without lmscope.phase (files from before it): one group, and no phase table in the text.
        by_phase={"(no phase)": Spend(calls=5, input_tokens=1147, output_tokens=213, cached_tokens=300,
                                      cost_usd=0.875, cache_hits=2, saved_usd=0.625, unpriced_calls=1)},
    )
    # Costliest first (dict equality above ignores the order).
    assert list(report.by_model) == ["gpt-4o", "gpt-4o-mini", "mystery-model"]
    assert list(report.by_module) == ["rag.answer", "rag.rewrite", "(no module)"]


def test_file_and_in_process_records_give_the_same_report(spans: list[ReadableSpan], tmp_path: Path) -> None:
    exporter = OtlpJsonFileExporter(tmp_path / "spans.jsonl")
    for span in spans:  # one line per span, as a SimpleSpanProcessor would write them
        exporter.export([span])
    exporter.shutdown()
    assert summarize(read_trace_file(tmp_path / "spans.jsonl")) == summarize(records_from_spans(spans))


def test_render_report(spans: list[ReadableSpan]) -> None:
    assert render_report(summarize(records_from_spans(spans))) == """\
5 LM calls in 3 traces

model          calls  input  output  cached   cost USD             cache hits  saved USD  unpriced
-------------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
gpt-4o             2   1000     200     300  $0.500000                      1  $0.500000         0
gpt-4o-mini        2    107      13       0  $0.375000                      1  $0.125000         0
mystery-model      1     40       0       0   unpriced                      0  $0.000000         1
-------------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
total              5   1147     213     300  $0.875000 + unpriced           2  $0.625000         1

module       calls  input  output  cached   cost USD             cache hits  saved USD  unpriced
-----------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
rag.answer       3   1040     200     300  $0.500000 + unpriced           1  $0.500000         1
rag.rewrite      1    100      10       0  $0.250000                      0  $0.000000         0
(no module)      1      7       3       0  $0.125000                      1  $0.125000         0
-----------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
total            5   1147     213     300  $0.875000 + unpriced           2  $0.625000         1"""


def test_empty_report() -> None:
    assert render_report(summarize([])) == """\
0 LM calls in 0 traces

model  calls  input  output  cached   cost USD  cache hits  saved USD  unpriced
-----  -----  -----  ------  ------  ---------  ----------  ---------  --------
total      0      0       0       0  $0.000000           0  $0.000000         0

module  calls  input  output  cached   cost USD  cache hits  saved USD  unpriced
------  -----  -----  ------  ------  ---------  ----------  ---------  --------
total       0      0       0       0  $0.000000           0  $0.000000         0"""



def test_unpriced_groups_read_unpriced_and_mixed_ones_mark_their_known_cost() -> None:
    """A group whose calls all lack a price costs `unpriced`, never $0.000000; a cache hit of such a call billed
    $0 (known) but saved an unknown amount; a group with some priced calls shows their cost, marked."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    agent = tracer.start_span("agent", attributes=_module("agent"))
    for attributes in (
        lm_attributes("mystery", 10, 2),
        lm_attributes("mystery", 0, 0, cost=0.0, **{semconv.CACHE_HIT: True, semconv.CACHE_LAYER: "disk"}),
        lm_attributes("gpt-4o", 20, 4, cost=0.25),
    ):
        tracer.start_span("chat", set_span_in_context(agent), attributes=attributes).end()
    agent.end()
    provider.shutdown()

    assert render_report(summarize(records_from_spans(memory.get_finished_spans()))) == """\
3 LM calls in 1 trace

model    calls  input  output  cached   cost USD             cache hits  saved USD  unpriced
-------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
gpt-4o       1     20       4       0  $0.250000                      0  $0.000000         0
mystery      2     10       2       0  $0.000000 + unpriced           1   unpriced         1
-------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
total        3     30       6       0  $0.250000 + unpriced           1   unpriced         1

module  calls  input  output  cached   cost USD             cache hits  saved USD  unpriced
------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
agent       3     30       6       0  $0.250000 + unpriced           1   unpriced         1
------  -----  -----  ------  ------  --------------------  ----------  ---------  --------
total       3     30       6       0  $0.250000 + unpriced           1   unpriced         1"""

def _json_span(span_id: str, parent: str | None, name: str, start: int, attributes: dict[str, Any]) -> dict[str, Any]:
    def value(item: Any) -> dict[str, Any]:
        if isinstance(item, bool):
            return {"boolValue": item}
        if isinstance(item, str):
            return {"stringValue": item}
        return {"doubleValue": item} if isinstance(item, float) else {"intValue": str(item)}

    span = {"traceId": "ab" * 16, "spanId": span_id, "name": name, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 10),
            "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()]}
    if parent:
        span["parentSpanId"] = parent
    return span


def test_a_foreign_file_with_a_parent_cycle_and_string_figures_still_reads(tmp_path: Path) -> None:
    """Another producer's spans: parents that form a cycle, a cost sent as a string. Nothing may vanish or crash."""
    lm = lm_attributes("gpt-4o", 100, 10, cost=0.25)
    spans = [
        _json_span("0000000000000001", None, "root", 1, {semconv.SPAN_KIND: semconv.KIND_CHAIN}),
        _json_span("000000000000000a", "0000000000000001", "chat gpt-4o", 2, lm),
        # b and c name each other as parents: no root reaches them.
        _json_span("000000000000000b", "000000000000000c", "chat gpt-4o", 3, lm),
        _json_span("000000000000000c", "000000000000000b", "chat gpt-4o", 4,
                   {**lm, semconv.GEN_AI_USAGE_COST: "0.25", semconv.GEN_AI_USAGE_INPUT_TOKENS: "lots"}),
    ]
    path = tmp_path / "foreign.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")

    records = read_trace_file(path)
    report = summarize(records)
    assert (report.total.calls, report.total.input_tokens, report.total.cost_usd) == (3, 200, 0.5)
    assert report.total.unpriced_calls == 1  # the string cost reads as no cost, never as 0 or a crash
    [tree] = build_trees(records)
    assert [(node.record.span_id[-1], parent.record.span_id[-1] if parent else None) for node, parent in tree.walk()] \
        == [("1", None), ("a", "1"), ("b", None), ("c", "b")]
