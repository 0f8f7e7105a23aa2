"""The console tree: what `ConsoleTreeProcessor` prints when a root ends, and `lmscope tree FILE` prints."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags, set_span_in_context
from span_attributes import lm_attributes

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.console import ConsoleTreeProcessor
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter
from lmscope.telemetry._trace_file import SpanRecord, read_trace_file
from lmscope.telemetry._tree import build_trees, render_tree

MS = 1_000_000

EXPECTED_TREE = """\
trace 0000000000000000000000000000000a
rag                          1.25 s   in 1200  out 80  cached 300  $0.000540 + unpriced
├── rag.rewrite             300.0 ms  in  400  out 20              $0.000120             batch[0]
│   └── chat gpt-4o-mini    290.0 ms  in  400  out 20              $0.000120
├── rag.retrieve             20.0 ms                                                     ERROR ConnectionError: index offline
└── rag.answer              900.0 ms  in  800  out 60  cached 300  $0.000420 + unpriced
    └── rag.answer.predict  890.0 ms  in  800  out 60  cached 300  $0.000420 + unpriced
        ├── chat gpt-4o     600.0 ms  in  800  out 60  cached 300  $0.000420
        ├── chat gpt-4o       0.4 ms  in    0  out  0              $0.000000             cache:memory saved $0.000420
        └── chat mystery      1.0 ms  in    0  out  0               unpriced"""


class SequentialIds(IdGenerator):
    """Known ids, so the expected text can name the trace."""

    def __init__(self) -> None:
        self._next = 0

    def generate_span_id(self) -> int:
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        return 0xA


def _provider(*processors: Any) -> TracerProvider:
    provider = TracerProvider(id_generator=SequentialIds())
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def _module(path: str, rollup: tuple[int, int, int, int] | None = None, *, unknown: bool = False,
            **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.MODULE_PATH: path}
    if rollup is not None:
        calls, input_tokens, output_tokens, cached_tokens = rollup
        attributes.update({
            semconv.LM_CALLS: calls,
            semconv.USAGE_INPUT_TOKENS: input_tokens,
            semconv.USAGE_OUTPUT_TOKENS: output_tokens,
            semconv.USAGE_CACHED_TOKENS: cached_tokens,
        })
    if unknown:
        attributes[semconv.COST_UNKNOWN] = True
    return {**attributes, **extra}


def _run_rag(provider: TracerProvider) -> None:
    """The RAG tree of README.md's "What a traced call looks like", with fixed times; spans end in an order
    unlike their start order."""
    tracer = provider.get_tracer("test")

    def span(name: str, parent: Any, start_ms: float, attributes: dict[str, Any]) -> Any:
        context = set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context, attributes=attributes, start_time=int(start_ms * MS))

    rag = span("rag", None, 0, _module("rag", (4, 1200, 80, 300), unknown=True, **{semconv.COST_TOTAL_USD: 0.00054}))
    rewrite = span("rag.rewrite", rag, 10, _module("rag.rewrite", (1, 400, 20, 0), **{
        semconv.COST_TOTAL_USD: 0.00012, semconv.BATCH_INDEX: 0}))
    lm = span("chat gpt-4o-mini", rewrite, 15, lm_attributes("gpt-4o-mini", 400, 20, 0, 0.00012))
    lm.end(end_time=305 * MS)
    rewrite.end(end_time=310 * MS)
    retrieve = span("rag.retrieve", rag, 320, _module("rag.retrieve", (0, 0, 0, 0), **{
        semconv.SPAN_KIND: semconv.KIND_RETRIEVER, semconv.ERROR_TYPE: "ConnectionError"}))
    retrieve.set_status(Status(StatusCode.ERROR, "index offline"))
    retrieve.end(end_time=340 * MS)
    answer = span("rag.answer", rag, 345, _module("rag.answer", (3, 800, 60, 300), unknown=True, **{
        semconv.COST_TOTAL_USD: 0.00042}))
    predict = span("rag.answer.predict", answer, 350, _module("rag.answer.predict", (3, 800, 60, 300), unknown=True, **{
        semconv.COST_TOTAL_USD: 0.00042}))
    # Started last, ended first: the tree still lists children by start time.
    unpriced = span("chat mystery", predict, 1000, lm_attributes("mystery", 0, 0, 0, None))
    unpriced.end(end_time=1001 * MS)
    priced = span("chat gpt-4o", predict, 360, lm_attributes("gpt-4o", 800, 60, 300, 0.00042))
    priced.end(end_time=960 * MS)
    hit = span("chat gpt-4o", predict, 970, lm_attributes("gpt-4o", 0, 0, 0, 0.0, **{
        semconv.CACHE_HIT: True, semconv.CACHE_LAYER: "memory", semconv.CACHE_SAVED_USD: 0.00042}))
    hit.end(end_time=970 * MS + 400_000)
    predict.end(end_time=1240 * MS)
    answer.end(end_time=1245 * MS)
    rag.end(end_time=1250 * MS)


def test_root_end_prints_the_exact_tree_and_the_file_renders_the_same(tmp_path: Path) -> None:
    stream = io.StringIO()
    path = tmp_path / "spans.jsonl"
    provider = _provider(ConsoleTreeProcessor(stream), SimpleSpanProcessor(OtlpJsonFileExporter(path)))
    _run_rag(provider)
    provider.shutdown()

    assert stream.getvalue() == EXPECTED_TREE + "\n"
    [tree] = build_trees(read_trace_file(path))
    assert render_tree(tree) == EXPECTED_TREE


def test_nothing_is_printed_before_the_root_ends_and_default_stream_is_stderr_at_print_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    provider = _provider(ConsoleTreeProcessor())
    tracer = provider.get_tracer("test")
    root = tracer.start_span("root", start_time=0)
    tracer.start_span("child", set_span_in_context(root), start_time=1 * MS).end(end_time=2 * MS)
    assert capsys.readouterr().err == ""
    root.end(end_time=3 * MS)
    assert capsys.readouterr().err == (
        "trace 0000000000000000000000000000000a\n"
        "root       3.0 ms\n"
        "└── child  1.0 ms\n"
    )


def test_a_span_with_a_remote_parent_is_a_local_root() -> None:
    stream = io.StringIO()
    provider = _provider(ConsoleTreeProcessor(stream))
    remote = SpanContext(trace_id=0xB, span_id=0xC, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    tracer = provider.get_tracer("test")
    server = tracer.start_span("POST /ask", set_span_in_context(NonRecordingSpan(remote)), start_time=0)
    server.end(end_time=5 * MS)
    assert stream.getvalue() == "trace 0000000000000000000000000000000b\nPOST /ask  5.0 ms\n"


def test_buffer_is_bounded_when_roots_never_end() -> None:
    stream = io.StringIO()
    provider = TracerProvider()  # random trace ids: one trace per root
    provider.add_span_processor(ConsoleTreeProcessor(stream, max_traces=2, max_spans_per_trace=3))
    tracer = provider.get_tracer("test")
    roots = [tracer.start_span(f"root{index}", start_time=0) for index in range(3)]
    for root in roots:
        for index in range(5):
            tracer.start_span(f"child{index}", set_span_in_context(root), start_time=MS).end(end_time=2 * MS)
    # root0's children were evicted when root2's trace arrived; root1 kept only its first three children.
    roots[0].end(end_time=3 * MS)
    roots[1].end(end_time=3 * MS)
    lines = stream.getvalue().splitlines()
    printed = [line.split()[-3] for line in lines if not line.startswith(("trace", "…"))]
    assert printed == ["root0", "root1", "child0", "child1", "child2"]
    # The cap is not silent: the trace that lost spans says how many.
    assert lines[-1] == "… 2 more spans not shown (the console keeps 3 per trace)"


def test_shutdown_drops_the_buffer_and_force_flush_prints_nothing() -> None:
    stream = io.StringIO()
    processor = ConsoleTreeProcessor(stream)
    provider = _provider(processor)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("root", start_time=0)
    tracer.start_span("child", set_span_in_context(root), start_time=MS).end(end_time=2 * MS)
    assert processor.force_flush() is True
    assert stream.getvalue() == ""
    processor.shutdown()
    root.end(end_time=3 * MS)
    assert stream.getvalue() == "trace 0000000000000000000000000000000a\nroot  3.0 ms\n"


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("stream closed")


@pytest.mark.usefixtures("swallow_internal_errors")  # the broken stream is a fault lmscope must absorb
def test_a_failing_stream_never_reaches_the_app(caplog: pytest.LogCaptureFixture) -> None:
    provider = _provider(ConsoleTreeProcessor(BrokenStream()))
    tracer = provider.get_tracer("test")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        for _ in range(3):
            with tracer.start_as_current_span("root"):
                pass
    [warning] = caplog.records
    assert "console tree" in warning.getMessage() and "stream closed" in warning.getMessage()


def _record(span_id: str, parent: str | None, start_ms: int, end_ms: int, **kwargs: Any) -> SpanRecord:
    return SpanRecord(trace_id="f" * 32, span_id=span_id, parent_span_id=parent, name=span_id, kind="INTERNAL",
                      start_ns=start_ms * MS, end_ns=end_ms * MS, **kwargs)


def test_orphans_become_roots_children_follow_start_time_and_errors_name_their_type() -> None:
    records = [
        _record("b", "a", 5, 6),
        _record("a", None, 0, 10),
        _record("c", "a", 1, 2, status_code="ERROR", status_message="boom",
                attributes={semconv.ERROR_TYPE: "ValueError", semconv.BATCH_INDEX: 2}),
        _record("orphan", "missing", 3, 1503, attributes={semconv.CACHE_HIT: True}),
    ]
    [tree] = build_trees(records)
    assert render_tree(tree) == (
        f"trace {'f' * 32}\n"
        "a       10.0 ms\n"
        "├── c    1.0 ms  batch[2]  ERROR ValueError: boom\n"
        "└── b    1.0 ms\n"
        "orphan  1.50 s   cache:hit"
    )


def test_color_only_when_asked() -> None:
    [tree] = build_trees([_record("a", None, 0, 1, status_code="ERROR", status_message="ValueError: boom")])
    assert "\x1b[" not in render_tree(tree)
    assert render_tree(tree, color=True) == (
        f"trace {'f' * 32}\na  \x1b[2m1.0 ms\x1b[0m  \x1b[31mERROR ValueError: boom\x1b[0m"
    )


def test_unpriced_calls_read_unpriced_never_zero_and_a_cache_hit_still_costs_zero() -> None:
    """Roll-ups as lmscope writes them: no lmscope.cost.total_usd when nothing below was priced, and
    lmscope.cost.unknown when something was not; a roll-up of 0.0 over unpriced calls (another producer) and an
    LM span with no cost at all (a failed call) are unpriced too."""
    unpriced_hit = lm_attributes("mystery", 0, 0, 0, 0.0, **{semconv.CACHE_HIT: True, semconv.CACHE_LAYER: "disk"})
    failed = lm_attributes("mystery", 5, 0)
    del failed[semconv.COST_UNKNOWN]
    records = [
        _record("agent", None, 0, 10, attributes=_module("agent", (4, 30, 6, 0), unknown=True, **{
            semconv.COST_TOTAL_USD: 0.000029})),
        _record("agent.plan", "agent", 1, 3, attributes=_module("agent.plan", (1, 10, 2, 0), unknown=True)),
        _record("chat mystery", "agent.plan", 1, 2, attributes=lm_attributes("mystery", 10, 2)),
        _record("agent.act", "agent", 4, 9, attributes=_module("agent.act", (3, 20, 4, 0), unknown=True, **{
            semconv.COST_TOTAL_USD: 0.000029})),
        _record("chat gpt-4o-mini", "agent.act", 4, 5, attributes=lm_attributes("gpt-4o-mini", 15, 4, 0, 0.000029)),
        _record("hit", "agent.act", 6, 7, attributes=unpriced_hit),
        _record("failed", "agent.act", 8, 9, attributes=failed),
        _record("other", None, 20, 21, attributes=_module("other", (1, 0, 0, 0), unknown=True, **{
            semconv.COST_TOTAL_USD: 0.0})),
    ]
    trees = build_trees(records)
    assert "\n".join(render_tree(tree) for tree in trees) == (
        f"trace {'f' * 32}\n"
        "agent                     10.0 ms  in 30  out 6  $0.000029 + unpriced\n"
        "├── agent.plan             2.0 ms  in 10  out 2   unpriced\n"
        "│   └── chat mystery       1.0 ms  in 10  out 2   unpriced\n"
        "└── agent.act              5.0 ms  in 20  out 4  $0.000029 + unpriced\n"
        "    ├── chat gpt-4o-mini   1.0 ms  in 15  out 4  $0.000029\n"
        "    ├── hit                1.0 ms  in  0  out 0  $0.000000             cache:disk\n"
        "    └── failed             1.0 ms  in  5  out 0   unpriced\n"
        "other                      1.0 ms  in  0  out 0   unpriced"
    )


def test_a_priced_call_too_cheap_for_six_decimals_shows_its_digits_never_zero() -> None:
    """4 tokens of text-embedding-3-small cost $0.00000008 (LiteLLM's price): six decimals would print the free
    $0.000000 that a cache hit reads; the module's roll-up shows the same digits."""
    records = [
        _record("index", None, 0, 10, attributes=_module("index", (1, 4, 0, 0), **{semconv.COST_TOTAL_USD: 8e-08})),
        _record("embeddings text-embedding-3-small", "index", 1, 2,
                attributes=lm_attributes("text-embedding-3-small", 4, 0, 0, 8e-08)),
    ]
    assert render_tree(build_trees(records)[0]) == (
        f"trace {'f' * 32}\n"
        "index                                  10.0 ms  in 4  out 0  $0.00000008\n"
        "└── embeddings text-embedding-3-small   1.0 ms  in 4  out 0  $0.00000008"
    )
