"""Span text cannot drive the terminal: every text view prints control characters escaped, never raw.

Names, models, error messages and cache layers come from the program, its LM or a file: an ESC in them would
otherwise clear the screen, retitle the window or write the clipboard (OSC 52), and a newline or carriage
return would forge tree rows. The only control characters lmscope writes are its own row newlines and, on a
colour terminal, its own SGR colour codes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context
from span_attributes import lm_attributes

from lmscope._cli import main
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.console import ConsoleTreeProcessor
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter
from lmscope.telemetry._printable import printable

HOSTILE = {
    "clipboard": "copy\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "title": "\x1b]0;pwned\x1b\\",
    "clear": "\x1b[2J\x1b[H",
    "c1": "\x9b31mred",
    "forged row": "ok\n├── chat gpt-4o   1.0 ms  $0.000000",
    "carriage return": "real\rfake",
    "bidi": "\u202egnp.exe",
    "nul del": "a\x00b\x7fc",
    "separator": "one\u2028two",
}
# What lmscope may write itself: newlines between rows, and SGR colour codes when the stream is a terminal.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OWN_COLOURS = re.compile("\x1b\\[(?:0|2|31|32)m")


def assert_no_raw_control(text: str, *, rows: int | None = None) -> None:
    assert RAW_CONTROL.search(text) is None, repr(text)
    if rows is not None:
        assert len(text.splitlines()) == rows  # no forged rows


def run_hostile_trace(provider: TracerProvider) -> int:
    """One root and, under it, a module span and a failing LM span per hostile text; returns the span count."""
    tracer = provider.get_tracer("test")
    root = tracer.start_span(HOSTILE["title"], start_time=0)
    for number, text in enumerate(HOSTILE.values()):
        module = tracer.start_span(text, set_span_in_context(root), start_time=1, attributes={
            semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.MODULE_PATH: f"rag.{text}", semconv.BATCH_INDEX: number})
        lm = tracer.start_span(f"chat {text}", set_span_in_context(module), start_time=2, attributes=lm_attributes(
            text, 10, 2, cost=0.001, **{semconv.CACHE_HIT: True, semconv.CACHE_LAYER: text,
                                        semconv.ERROR_TYPE: text}))
        lm.set_status(Status(StatusCode.ERROR, text))
        lm.end(end_time=3)
        module.end(end_time=4)
    root.end(end_time=5)
    return 1 + 2 * len(HOSTILE)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream_class", [io.StringIO, Terminal], ids=["plain", "colour"])
def test_console_exporter_escapes_span_text(stream_class: type[io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = stream_class()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream))
    spans = run_hostile_trace(provider)
    printed = stream.getvalue()
    if stream_class is Terminal:
        assert OWN_COLOURS.search(printed)  # colour still works ...
        printed = OWN_COLOURS.sub("", printed)  # ... and is the only escape sequence written
    assert_no_raw_control(printed, rows=1 + spans)
    assert "copy\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in printed and "ok\\n├── chat gpt-4o" in printed
    assert "ERROR \\x9b31mred" in printed and "cache:real\\rfake" in printed and "\\u202egnp.exe" in printed


def test_tree_and_report_commands_escape_span_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hostile.jsonl"
    exporter = OtlpJsonFileExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = run_hostile_trace(provider)
    exporter.shutdown()

    assert main(["tree", str(path)]) == 0
    printed = capsys.readouterr()
    assert_no_raw_control(printed.out, rows=1 + spans)
    assert printed.err == ""
    assert main(["report", str(path)]) == 0
    printed = capsys.readouterr()
    assert_no_raw_control(printed.out)
    # Each hostile model and module is one row of its table, shown escaped.
    assert all(f"\n{printable(text)} " in printed.out for text in HOSTILE.values())
    assert all(f"\nrag.{printable(text)} " in printed.out for text in HOSTILE.values())


def test_file_names_and_bad_values_in_messages_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trace\x1b[2J.jsonl"
    path.write_text('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\\u001b]0;x\\u0007","spanId":"1"}]}]}]}\n')
    assert main(["tree", str(path)]) == 1
    printed: Any = capsys.readouterr()
    assert_no_raw_control(printed.err, rows=2)
    assert "trace\\x1b[2J.jsonl line 1: span 1 has a bad traceId ('\\x1b]0;x\\x07'" in printed.err


def test_printable() -> None:
    assert printable("a\x1b[31mb\n\r\t\x00\x7f\x85\u2028\u202e\ud800 é 日本 \\x1b") \
        == "a\\x1b[31mb\\n\\r\\t\\x00\\x7f\\x85\\u2028\\u202e\\ud800 é 日本 \\x1b"
    assert printable("\x1b" * 10, max_chars=9) == "\\x1b\\x1b…"
