"""Big and deep trace files: reading streams, memory follows the largest trace (not the file), depth is capped.

The ~1 GB figure is benchmarks/bench_report_large.py's; here a ~20 MB file and a 20,000-level chain keep the
fast suite fast while still failing if the reader held the whole file or drew every level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from big_trace_file import LM_CALLS_PER_TRACE, write_trace_file

from lmscope._cli import main
from lmscope.telemetry._read_problems import ReadProblems
from lmscope.telemetry._report_html import render_html
from lmscope.telemetry._report_page import gather_page
from lmscope.telemetry._trace_file import SpanRecord, iter_trace_file
from lmscope.telemetry._trace_stream import IDLE_LINES, stream_trees
from lmscope.telemetry._tree import render_tree

MB = 1024 * 1024


def peak_traced(work: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_report_and_tree_of_a_20_mb_file_hold_far_less_than_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    _, traces = write_trace_file(path, 20 * MB, traces_per_line=5)
    size = path.stat().st_size

    def report() -> Any:
        return gather_page(iter_trace_file(path, ReadProblems(path.name)), path.name, max_traces=0).report

    summary, peak = peak_traced(report)
    assert (summary.traces, summary.total.calls) == (traces, traces * LM_CALLS_PER_TRACE)
    assert peak < size / 10, f"peak {peak / MB:.1f} MB for a {size / MB:.1f} MB file"

    def trees() -> int:  # what `lmscope tree` does, less the printing
        return sum(len(render_tree(tree)) > 0 for tree in stream_trees(iter_trace_file(path, ReadProblems("big"))))

    drawn, peak = peak_traced(trees)
    assert drawn == traces and peak < size / 10, f"peak {peak / MB:.1f} MB for a {size / MB:.1f} MB file"


def chain(depth: int) -> str:
    """One trace, one line: a span under a span under a span ... `depth` levels."""
    spans = [{"traceId": "cd" * 16, "spanId": f"{level + 1:016x}", "name": f"level{level}",
              "startTimeUnixNano": str(level), "endTimeUnixNano": str(10 * depth - level),
              **({"parentSpanId": f"{level:016x}"} if level else {})} for level in range(depth)]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n"


def test_a_20000_level_chain_draws_64_levels_and_a_count_in_linear_memory(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(chain(20_000))
    size = path.stat().st_size

    def tree_text() -> str:
        return "\n".join(render_tree(tree) for tree in stream_trees(iter_trace_file(path, ReadProblems("deep"))))

    text, peak = peak_traced(tree_text)
    lines = text.splitlines()
    assert lines[1].split() == ["level0", "0.2", "ms"] and lines[65].startswith("    " * 63 + "└── level64 ")
    assert lines[66] == "    " * 64 + "└── … 19,935 more spans deeper than 64 levels not drawn"
    assert len(lines) == 67 and len(text) < 30_000
    assert peak < 200 * MB and peak < 40 * size, f"peak {peak / MB:.1f} MB"

    html, peak = peak_traced(lambda: render_html(gather_page(iter_trace_file(path, ReadProblems("deep")), "deep")))
    assert html.count("<li>") == 65 and "… 19,935 more spans deeper than 64 levels not drawn" in html
    assert peak < 200 * MB and peak < 40 * size, f"peak {peak / MB:.1f} MB"


def test_tree_command_on_a_deep_chain(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(chain(5_000))
    assert main(["tree", str(path)]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and len(printed.out.splitlines()) == 67


def test_traces_are_handed_on_as_they_complete_not_at_the_end_of_the_file() -> None:
    """Memory follows the open traces: a trace goes once the line with its local root is done (a span without a
    parent, or with a parent in another process), or after IDLE_LINES lines without a span of it."""
    consumed = 0

    def records() -> Iterator[SpanRecord]:
        nonlocal consumed
        for line in range(1, 3001):
            trace = f"{line:032x}"
            child = SpanRecord(trace, "0000000000000002", "0000000000000001", "child", "INTERNAL", 1, 2, line=line)
            if line <= 1000:  # a producer that does not mark remote parents: no root ever comes
                root = SpanRecord(trace, "0000000000000001", "00000000000000ff", "root", "INTERNAL", 0, 3, line=line)
            elif line <= 2000:  # a server's traces: the local root's parent is the caller's span
                root = SpanRecord(trace, "0000000000000001", "00000000000000ff", "root", "SERVER", 0, 3,
                                  remote_parent=True, line=line)
            else:
                root = SpanRecord(trace, "0000000000000001", None, "root", "INTERNAL", 0, 3, line=line)
            for record in (child, root):
                consumed += 1
                yield record

    lag = {}  # trace (= its line) -> lines read past it when its tree came
    for tree in stream_trees(records()):
        lag[int(tree.trace_id, 16)] = consumed // 2 - int(tree.trace_id, 16)
    assert len(lag) == 3000
    assert {lag[line] for line in range(1, 1001)} == {IDLE_LINES}  # rootless: once idle for IDLE_LINES lines
    assert {lag[line] for line in range(1001, 3001)} == {0}  # handed on as soon as the next line starts


def test_a_reader_that_stops_early_ends_the_tree_command_quietly(tmp_path: Path) -> None:
    """`lmscope tree FILE | head -1`: the closed pipe used to be reported as `cannot read FILE: broken pipe`, exit 1,
    as if the trace file were at fault."""
    path = tmp_path / "traces.jsonl"
    write_trace_file(path, 2_000_000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    reading = subprocess.Popen([sys.executable, "-m", "lmscope", "tree", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert reading.stdout is not None and reading.stderr is not None
    first = reading.stdout.readline()
    reading.stdout.close()  # what `head -1` does once it has its line
    errors = reading.stderr.read().decode()
    assert reading.wait(timeout=120) == 0, errors
    assert first.strip() and errors == ""


def test_report_still_writes_its_html_page_when_the_reader_of_stdout_left(tmp_path: Path) -> None:
    """`lmscope report FILE --html page.html | head -1`: the page was skipped when the summary met the closed pipe."""
    path, page = tmp_path / "traces.jsonl", tmp_path / "page.html"
    write_trace_file(path, 1_000_000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    reading = subprocess.Popen([sys.executable, "-m", "lmscope", "report", str(path), "--html", str(page)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert reading.stdout is not None and reading.stderr is not None
    reading.stdout.close()  # gone before the summary is printed
    errors = reading.stderr.read().decode()
    assert reading.wait(timeout=120) == 0, errors
    assert errors == f"HTML report: {page}\n"
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")
