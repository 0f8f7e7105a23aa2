"""The OTLP/JSON file exporter writes whole lines or none: after a full disk, every line is still valid JSON.

The full disk is real where the tests run as root (a 64 KiB tmpfs); the "another process appended behind the
torn line" case replaces the exporter's one write call, as no real disk can be made to do that on cue.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.telemetry._exporters import otlp_json
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter


def finished_spans(names: list[str], attribute_bytes: int = 0) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in names:
        provider.get_tracer("t").start_span(name, attributes={"pad": "x" * attribute_bytes}).end()
    return list(memory.get_finished_spans())


def lines_and_names(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    names = []
    for line in lines:
        for resource in json.loads(line)["resourceSpans"]:  # raises if any line is not whole
            for scope in resource["scopeSpans"]:
                names.extend(span["name"] for span in scope["spans"])
    return lines, names


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: even if a failed test left a file open


def test_a_disk_that_fills_mid_line_leaves_no_partial_line(small_disk: Path, caplog) -> None:
    path = small_disk / "traces.jsonl"
    exporter = OtlpJsonFileExporter(path)
    assert exporter.export(finished_spans(["before"])) is SpanExportResult.SUCCESS
    filler = small_disk / "filler"
    # Fill the disk, then free one page (tmpfs counts pages).
    with open(filler, "wb", buffering=0) as file, pytest.raises(OSError, match="No space left"):
        while True:
            file.write(b"\0" * 4096)
    os.truncate(filler, filler.stat().st_size - 4096)
    size_before = path.stat().st_size

    # A 12 KiB line does not fit: the kernel takes what fits, then refuses the rest.
    assert exporter.export(finished_spans(["lost"], attribute_bytes=12_000)) is SpanExportResult.FAILURE
    assert path.stat().st_size == size_before  # the part that fitted was taken back
    filler.unlink()
    assert exporter.export(finished_spans(["after"])) is SpanExportResult.SUCCESS

    lines, names = lines_and_names(path)
    assert (len(lines), names) == (2, ["before", "after"])
    assert [r.getMessage() for r in caplog.records if r.name == "lmscope"] == [
        f"lmscope: cannot write spans to {path} (OSError(28, 'No space left on device')); spans are being dropped"]
    exporter.shutdown()


def test_a_torn_line_that_cannot_be_taken_back_stays_one_line(tmp_path: Path, monkeypatch) -> None:
    """Another process appended behind the partial line: it cannot be cut off, so the next line ends it first."""
    path = tmp_path / "traces.jsonl"
    exporter = OtlpJsonFileExporter(path)
    assert exporter.export(finished_spans(["before"])) is SpanExportResult.SUCCESS
    real_write = os.write
    calls = []

    def fill_up_after_half(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            written = real_write(fd, data[: len(data) // 2])
            with open(path, "a", encoding="utf-8") as other:  # another writer appends behind the torn half
                other.write('{"resourceSpans":[]}\n')
            return written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(otlp_json, "_write", fill_up_after_half)
    assert exporter.export(finished_spans(["lost"])) is SpanExportResult.FAILURE
    monkeypatch.setattr(otlp_json, "_write", real_write)
    assert exporter.export(finished_spans(["after"])) is SpanExportResult.SUCCESS

    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]  # readers skip blank lines
    valid = []
    for line in lines:
        try:
            valid.append(json.loads(line))
        except ValueError:
            continue
    # The torn half ran into the other writer's line (lost with it): one unreadable line, the rest whole.
    assert len(lines) == len(valid) + 1
    names = [s["name"] for request in valid for r in request["resourceSpans"] for sc in r["scopeSpans"]
             for s in sc["spans"]]
    assert names == ["before", "after"]
    exporter.shutdown()
