"""Crafted trace files: every malformed thing costs one human line naming file and line, never the file.

Each case puts one hostile line between two good ones (and, where the line still parses, a good span beside the
bad one): the reader must skip or default exactly what is wrong, say so once, and keep every good span; the tree,
text report and HTML page of what was read must render. A few cases also go through `python -m lmscope` in a
subprocess, for the exit codes and to show no traceback reaches the user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lmscope.telemetry._read_problems import ReadProblems
from lmscope.telemetry._report import render_report
from lmscope.telemetry._report_html import render_html
from lmscope.telemetry._report_page import gather_page
from lmscope.telemetry._trace_file import read_trace_file
from lmscope.telemetry._trace_stream import stream_trees
from lmscope.telemetry._tree import render_tree

TRACE = "ab" * 16
FILE = "trace.jsonl"


def span(name: str, span_id: str = "00000000000000f1", **fields: Any) -> dict[str, Any]:
    encoded: dict[str, Any] = {"traceId": TRACE, "spanId": span_id, "name": name, "startTimeUnixNano": "1000",
                               "endTimeUnixNano": "2000"}
    encoded.update(fields)
    return {key: value for key, value in encoded.items() if value is not _DROP}


_DROP = object()


def request(*spans: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}]}


def with_good_sibling(bad: dict[str, Any]) -> bytes:
    """The bad span second in its line, after a good one: the good one must survive its neighbour."""
    return json.dumps(request(span("beside", "00000000000000b1"), bad)).encode()


def nested(kind: str, depth: int) -> str:
    """An AnyValue `depth` levels deep, as JSON text (json.dumps itself would hit the recursion limit)."""
    if kind == "kvlist":
        return '{"kvlistValue":{"values":[{"key":"k","value":' * depth + '{"intValue":"1"}' + "}]}}" * depth
    return '{"arrayValue":{"values":[' * depth + '{"intValue":"1"}' + "]}}" * depth


def attribute_line(value_json: str) -> bytes:
    return (json.dumps(request(span("beside", "00000000000000b1"))).removesuffix("]}]}]}")
            + ',{"traceId":"' + TRACE + '","spanId":"00000000000000f1","name":"bad","attributes":[{"key":"deep",'
            + '"value":' + value_json + "}]}]}]}]}").encode()


# name -> (the hostile line, the one message it must give: a problem line on line 2, or the unreadable summary)
UNREADABLE = f"{FILE}: skipped 1 unreadable line (2)"
CASES: dict[str, tuple[bytes, str]] = {
    "torn line (full disk)": (b'{"resourceSpans": [{"scopeSpans": [{"spa', UNREADABLE),
    "not JSON": (b"\x00\x00\x00garbage", UNREADABLE),
    "value nested 10,000 deep": (attribute_line(nested("kvlist", 10_000)), UNREADABLE),
    "array nested 10,000 deep": (attribute_line(nested("array", 10_000)), UNREADABLE),
    "value nested 100 deep": (attribute_line(nested("kvlist", 100)),
                              "span 2 has attribute 'k' nested deeper than 32 levels; read as empty"),
    "array nested 100 deep": (attribute_line(nested("array", 100)),
                              "span 2 has attribute 'deep' nested deeper than 32 levels; read as empty"),
    "request is a list": (b"[1, 2, 3]", "not an OTLP/JSON trace request (no resourceSpans list); skipped"),
    "request is null": (b"null", "not an OTLP/JSON trace request (no resourceSpans list); skipped"),
    "resourceSpans is an object": (b'{"resourceSpans": {"a": 1}}',
                                   "not an OTLP/JSON trace request (no resourceSpans list); skipped"),
    "resourceSpans entry is text": (json.dumps({"resourceSpans": ["x", request(span("beside"))["resourceSpans"][0]]})
                                    .encode(), "a resourceSpans entry is text, not an object; skipped"),
    "scopeSpans entry without spans": (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": "no"}]}]}).encode(),
                                       "a scopeSpans entry has no spans list; skipped"),
    "resource attributes a string": (json.dumps({"resourceSpans": [{"resource": {"attributes": "svc"},
                                                                    "scopeSpans": [{"spans": [span("beside")]}]}]})
                                     .encode(), "resource has attributes that are text, not a list; skipped"),
    "span is a number": (with_good_sibling(7), "span 2 is a number, not an object; skipped"),  # type: ignore[arg-type]
    "span is empty": (with_good_sibling({}), "span 2 has no traceId; skipped (and 1 more problem)"),
    "no traceId": (with_good_sibling(span("bad", traceId=_DROP)), "span 2 has no traceId; skipped"),
    "no spanId": (with_good_sibling(span("bad", spanId=_DROP)), "span 2 has no spanId; skipped"),
    "short traceId": (with_good_sibling(span("bad", traceId="abc")),
                      "span 2 has a bad traceId ('abc', not 32 hex digits); skipped"),
    "traceId a number": (with_good_sibling(span("bad", traceId=12)),
                         "span 2 has a bad traceId (12, not 32 hex digits); skipped"),
    "spanId a list": (with_good_sibling(span("bad", spanId=["00000000000000f1"])),
                      "span 2 has a bad spanId (a list, not 16 hex digits); skipped"),
    "spanId not hex": (with_good_sibling(span("bad", spanId="zzzzzzzzzzzzzzzz")),
                       "span 2 has a bad spanId ('zzzzzzzzzzzzzzzz', not 16 hex digits); skipped"),
    "parentSpanId an object": (with_good_sibling(span("bad", parentSpanId={"id": 1})),
                               "span 2 has a bad parentSpanId (an object, not 16 hex digits); drawn as a root"),
    "attributes a string": (with_good_sibling(span("bad", attributes="model=gpt-4o")),
                            "span 2 has attributes that are text, not a list; skipped"),
    "attribute key a number": (with_good_sibling(span("bad", attributes=[{"key": 5, "value": {}}])),
                               "span 2 has an attribute without a text key (an object); skipped"),
    "attribute value a list": (with_good_sibling(span("bad", attributes=[{"key": "a", "value": [1]}])),
                               "span 2 has attribute 'a' whose value is a list, not an AnyValue; read as empty"),
    "intValue an object": (with_good_sibling(span("bad", attributes=[{"key": "a", "value": {"intValue": {}}}])),
                           "span 2 has attribute 'a' with a bad intValue (an object); read as empty"),
    "intValue 5,000 digits": (with_good_sibling(span("bad", attributes=[{"key": "a",
                                                                         "value": {"intValue": "9" * 5000}}])),
                              "span 2 has attribute 'a' with a bad intValue ('999999999999999999999999999999999999999…'"
                              "); read as empty"),
    "intValue a huge JSON number": (attribute_line('{"intValue":' + "9" * 5000 + "}"),
                                    "span 2 has attribute 'deep' with a bad intValue (inf); read as empty"),
    "intValue past 64 bits": (with_good_sibling(span("bad", attributes=[{"key": "a",
                                                                         "value": {"intValue": str(2**70)}}])),
                              "span 2 has attribute 'a' with a bad intValue ('1180591620717411303424'); read as empty"),
    "doubleValue text": (with_good_sibling(span("bad", attributes=[{"key": "a", "value": {"doubleValue": "abc"}}])),
                         "span 2 has attribute 'a' with a bad doubleValue ('abc'); read as empty"),
    "bytesValue not base64": (with_good_sibling(span("bad", attributes=[{"key": "a", "value": {"bytesValue": "@@"}}])),
                              "span 2 has attribute 'a' with a bad bytesValue ('@@'); read as empty"),
    "unknown value kind": (with_good_sibling(span("bad", attributes=[{"key": "a", "value": {"mapValue": 1}}])),
                           "span 2 has attribute 'a' with a bad mapValue (1); read as empty"),
    "start time NaN": (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE.encode()
                       + b'","spanId":"00000000000000f1","name":"bad","startTimeUnixNano":NaN}]}]}]}',
                       "span 1 has a bad startTimeUnixNano (nan); read as 0"),
    "end time Infinity": (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE.encode()
                          + b'","spanId":"00000000000000f1","name":"bad","endTimeUnixNano":Infinity}]}]}]}',
                          "span 1 has a bad endTimeUnixNano (inf); read as 0"),
    "negative start time": (with_good_sibling(span("bad", startTimeUnixNano="-5")),
                            "span 2 has a bad startTimeUnixNano ('-5'); read as 0"),
    "end time past datetime": (with_good_sibling(span("bad", endTimeUnixNano=str(10**30))),
                               "span 2 has a bad endTimeUnixNano ('1000000000000000000000000000000'); read as 0"),
    "start time a float beyond 64 bits": (with_good_sibling(span("bad", startTimeUnixNano=1e300)),
                                          "span 2 has a bad startTimeUnixNano (1e+300); read as 0"),
    "kind 99": (with_good_sibling(span("bad", kind=99)), "span 2 has an unknown kind (99); read as UNSPECIFIED"),
    "kind -1": (with_good_sibling(span("bad", kind=-1)), "span 2 has an unknown kind (-1); read as UNSPECIFIED"),
    "status a string": (with_good_sibling(span("bad", status="ERROR")), "span 2 has a status that is text"),
    "status code 7": (with_good_sibling(span("bad", status={"code": 7})),
                      "span 2 has an unknown status code (7); read as UNSET"),
    "status message a list": (with_good_sibling(span("bad", status={"code": 2, "message": ["x"]})),
                              "span 2 has a message that is a list, not text; read as empty"),
    "name an object": (with_good_sibling(span({"x": 1})),  # type: ignore[arg-type]
                       "span 2 has a name that is an object, not text; read as empty"),
    "events an object": (with_good_sibling(span("bad", events={"name": "exception"})),
                         "span 2 has events that are an object, not a list; skipped"),
    "event a string": (with_good_sibling(span("bad", events=["exception"])), "span 2 has an event that is text"),
    "event time negative": (with_good_sibling(span("bad", events=[{"name": "e", "timeUnixNano": -1}])),
                            "span 2 has a bad timeUnixNano (-1); read as 0"),
    "non-UTF-8 bytes": (with_good_sibling(span("bad")).replace(b'"bad"', b'"b\xffd"'),
                        "not valid UTF-8; undecodable bytes read as U+FFFD"),
}


def good(name: str) -> bytes:
    return json.dumps(request(span(name, "00000000000000a1" if name == "before" else "00000000000000c1"))).encode()


def write_case(path: Path, hostile: bytes) -> Path:
    path.write_bytes(good("before") + b"\n" + hostile + b"\n" + good("after") + b"\n")
    return path


def render_all(records: list[Any], problems: ReadProblems) -> str:
    """Everything a reader prints of the records: trees, the text report and the HTML page."""
    text = "\n".join(render_tree(tree) for tree in stream_trees(records, problems))
    page = gather_page(records, FILE)
    return text + render_report(page.report) + render_html(page)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_hostile_line_gives_one_message_and_the_good_spans_are_kept(case: str, tmp_path: Path) -> None:
    hostile, message = CASES[case]
    problems = ReadProblems(FILE)
    records = read_trace_file(write_case(tmp_path / FILE, hostile), problems)
    output = render_all(records, problems)
    expected = message if message == UNREADABLE else f"{FILE} line 2: {message}"
    assert problems.lines() == [expected]
    names = {record.name for record in records}
    assert {"before", "after"} <= names and "before" in output and "after" in output
    if b'"beside"' in hostile and message != UNREADABLE:
        assert "beside" in names  # the good span next to the bad one in the same line


def test_cycles_self_parents_and_duplicate_ids_keep_every_span_once(tmp_path: Path) -> None:
    line = request(
        span("root", "0000000000000001"),
        span("self", "0000000000000002", parentSpanId="0000000000000002"),
        span("b", "000000000000000b", parentSpanId="000000000000000c"),
        span("c", "000000000000000c", parentSpanId="000000000000000b"),
        span("copy", "0000000000000001"),
    )
    problems = ReadProblems(FILE)
    path = tmp_path / FILE
    path.write_text(json.dumps(line) + "\n")
    [tree] = list(stream_trees(read_trace_file(path, problems), problems))
    assert sorted(node.record.name for node, _ in tree.walk()) == ["b", "c", "root", "self"]
    assert problems.lines() == [f"{FILE} line 1: span id 0000000000000001 appears twice in trace {TRACE}; "
                                "the later span skipped"]


def test_bom_and_blank_lines_are_not_problems(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(b"\xef\xbb\xbf" + good("before") + b"\n\n   \n" + good("after"))  # no final newline either
    problems = ReadProblems(FILE)
    assert [record.name for record in read_trace_file(path, problems)] == ["before", "after"]
    assert not problems.found


def test_problem_lines_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(b"\n".join([b"{torn"] * 30 + [with_good_sibling(span("bad", kind=99))] * 30))
    problems = ReadProblems(FILE)
    assert len(read_trace_file(path, problems)) == 60
    lines = problems.lines()
    assert len(lines) == 22 and lines[-2] == f"{FILE}: 10 more problems not shown"
    assert lines[-1] == f"{FILE}: skipped 30 unreadable lines (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, …)"


# --- through the command line ----------------------------------------------------------------------


def lmscope(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lmscope", *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_cli_reads_a_file_of_every_hostile_line_with_exit_0_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(b"\n".join([good("before"), *(hostile for hostile, _ in CASES.values()), good("after")]))
    for args in (["tree", path], ["report", path], ["report", path, "--html", tmp_path / "out.html"]):
        done = lmscope(*args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "Error" not in done.stderr
        problem_lines = [line for line in done.stderr.splitlines() if not line.startswith("HTML report: ")]
        assert all(line.startswith(f"{path} line ") or line.startswith(f"{path}: ") for line in problem_lines)
        assert f"{path}: skipped 4 unreadable lines (2, 3, 4, 5)" in problem_lines
        assert f"{path}: {len(CASES) - 4 - 20} more problems not shown" in problem_lines
    assert "before" in lmscope("tree", path).stdout and "after" in lmscope("tree", path).stdout
    assert "before" in (tmp_path / "out.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["tree", "report"])
def test_cli_exit_codes(command: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"{torn\n\xff\xfe\n")
    cases = {
        empty: (0, []),  # a run that exported nothing: a valid file with no traces
        garbage: (1, [f"{garbage}: skipped 2 unreadable lines (1, 2)",
                      f"lmscope {command}: no span could be read from {garbage}"]),
        tmp_path: (1, [f"lmscope {command}: cannot read {tmp_path}: it is a directory, not a trace file"]),
        tmp_path / "missing.jsonl": (1, [f"lmscope {command}: cannot read {tmp_path / 'missing.jsonl'}: "
                                         "no such file or directory"]),
    }
    for path, (code, stderr) in cases.items():
        done = lmscope(command, path)
        assert (done.returncode, done.stderr.splitlines()) == (code, stderr)


def test_lone_surrogates_and_huge_names_neither_crash_nor_blow_up_the_output(tmp_path: Path) -> None:
    """Valid JSON, so no message: but "\\ud800" cannot be encoded (UnicodeEncodeError when printed or written)
    and a 1 MB name would pad every row of the tree and the report to 1 MB."""
    huge = "x" * 1_000_000
    spans = [span("root", "0000000000000001", attributes=[{"key": "gen_ai.request.model",
                                                          "value": {"stringValue": "\ud800model"}}]),
             span(huge, "0000000000000002", parentSpanId="0000000000000001",
                  attributes=[{"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                              {"key": "gen_ai.request.model", "value": {"stringValue": huge}}]),
             *(span(f"s{n}\udc80", f"{n + 16:016x}", parentSpanId="0000000000000001") for n in range(200))]
    path = tmp_path / FILE
    path.write_text(json.dumps(request(*spans)) + "\n")
    for args in (["tree", path], ["report", path, "--html", tmp_path / "out.html"]):
        done = lmscope(*args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stdout) < 100_000
    assert "s0\\udc80" in lmscope("tree", path).stdout
    assert "s0\\udc80" in (tmp_path / "out.html").read_text(encoding="utf-8")
