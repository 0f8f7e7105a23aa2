"""Write a large, realistic lmscope trace file fast: one batch line as a template, repeated with fresh ids.

Each line holds `traces_per_line` RAG-shaped traces of 9 spans (a root module, three sub-modules, a Predict,
three LM calls and a retrieval) with prompt-sized content, as the OTLP/JSON file exporter writes them.
Used by tests/telemetry/test_large_trace_files.py (small files) and benchmarks/bench_report_large.py (~1 GB).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPANS_PER_TRACE = 9
LM_CALLS_PER_TRACE = 3
_BATCH = "BBBBBBBBBBBBBBBB"  # 16 characters replaced by the batch number: every line gets new trace ids
_CONTENT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 34  # ~2 KB, a prompt's worth


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _span(trace: int, span: int, parent: int | None, name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": f"{_BATCH}{trace:016x}", "spanId": f"{span:016x}", "name": name, "kind": 1,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + span * 1000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + 100_000 - span * 1000),
        "attributes": [{"key": key, "value": _value(value)} for key, value in attributes.items()],
        "status": {},
    }
    if parent is not None:
        encoded["parentSpanId"] = f"{parent:016x}"
    return encoded


def _module(path: str) -> dict[str, Any]:
    return {"openinference.span.kind": "CHAIN", "lmscope.module.path": path, "lmscope.module.class": "Predict",
            "input.value": _CONTENT, "output.value": _CONTENT[:300]}


def _lm(model: str) -> dict[str, Any]:
    return {"openinference.span.kind": "LLM", "gen_ai.request.model": model, "gen_ai.usage.input_tokens": 400,
            "gen_ai.usage.output_tokens": 20, "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cost": 0.00012, "lmscope.cache.hit": False, "input.value": _CONTENT}


def _trace(trace: int) -> list[dict[str, Any]]:
    # Ended children first, the root last, as the BatchSpanProcessor exports them.
    return [
        _span(trace, 3, 2, "chat gpt-4o-mini", _lm("gpt-4o-mini")),
        _span(trace, 2, 1, "rag.rewrite", _module("rag.rewrite")),
        _span(trace, 4, 1, "rag.retrieve", {"openinference.span.kind": "RETRIEVER", "lmscope.module.path": "rag.retrieve"}),
        _span(trace, 7, 6, "chat gpt-4o", _lm("gpt-4o")),
        _span(trace, 8, 6, "chat gpt-4o", _lm("gpt-4o")),
        _span(trace, 9, 6, "format", {"adapter": "ChatAdapter"}),
        _span(trace, 6, 5, "rag.answer.predict", _module("rag.answer.predict")),
        _span(trace, 5, 1, "rag.answer", _module("rag.answer")),
        _span(trace, 1, None, "rag", _module("rag")),
    ]


def batch_template(traces_per_line: int) -> str:
    spans = [span for trace in range(traces_per_line) for span in _trace(trace)]
    request = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": _value("bench")}]},
                                  "scopeSpans": [{"scope": {"name": "lmscope"}, "spans": spans}]}]}
    return json.dumps(request, separators=(",", ":")) + "\n"


def write_trace_file(path: Path, size_bytes: int, *, traces_per_line: int = 50) -> tuple[int, int]:
    """Lines until the file reaches `size_bytes`; returns (lines, traces)."""
    template = batch_template(traces_per_line)
    lines = max(1, size_bytes // len(template))
    with open(path, "w", encoding="utf-8") as file:
        for batch in range(lines):
            file.write(template.replace(_BATCH, f"{batch:016x}"))
    return lines, lines * traces_per_line
