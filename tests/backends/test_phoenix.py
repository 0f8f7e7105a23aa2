"""`exporters=["phoenix"]` against a real `phoenix serve` (sqlite, 127.0.0.1; see phoenix_server.py), read back
through Phoenix's REST API: the tree, span kinds, token counts against the stand-in LM's bill, the session, the
project and the prompt, span for span against lmscope's own trace file of the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_env import app_env
from phoenix_readback import assert_messages_stored, project_sessions, project_spans
from phoenix_server import running_phoenix

from lmscope._lm_server import StandInLM
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._trace_file import read_trace_file
from lmscope.telemetry._trace_records import SpanRecord

APP = Path(__file__).with_name("phoenix_workload_app.py")
API_KEY = "px-SECRET-api-key-0005"  # a server without auth ignores it; it must still never be stored or logged


@pytest.fixture(scope="module")
def phoenix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_phoenix(tmp_path_factory.mktemp("phoenix")) as url:
        yield url


@pytest.fixture
def billing_lm() -> Iterator[tuple[StandInLM, list[dict[str, Any]]]]:
    """A fresh stand-in LM and the usage block of every answer it sends: the bill."""
    bill: list[dict[str, Any]] = []
    with StandInLM() as server:
        complete = server.complete

        def billed(body: Any) -> Any:
            completion = complete(body)
            bill.append(completion.usage())
            return completion

        server.complete = billed  # type: ignore[method-assign]
        yield server, bill


def _run_workload(lm: StandInLM, env: dict[str, str], tmp_path: Path, session: str) -> subprocess.CompletedProcess[str]:
    clean = app_env("LMSCOPE_", "OTEL_", "PHOENIX_")
    # A DSPy cache of its own: the first pass must really call the LM, whatever ran before in this session.
    clean.update(DSPY_CACHEDIR=str(tmp_path / "dspy-cache"), LITELLM_LOCAL_MODEL_COST_MAP="True", **env)
    return subprocess.run([sys.executable, str(APP), lm.base_url, session], env=clean, capture_output=True,
                          text=True, timeout=300, check=False)


def _token(attributes: dict[str, Any], key: str) -> int:
    return int(attributes.get(key, 0))


def test_demo_traces_in_phoenix_match_lmscope_and_the_bill(phoenix_server: str, billing_lm, tmp_path: Path) -> None:
    lm, bill = billing_lm
    project, session = f"lmscope-{uuid.uuid4().hex[:8]}", f"phoenix-session-{uuid.uuid4().hex[:8]}"
    trace_file = tmp_path / "traces.jsonl"
    done = _run_workload(lm, {
        "LMSCOPE_EXPORTERS": "phoenix,file", "LMSCOPE_FILE_PATH": str(trace_file),
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix_server, "PHOENIX_PROJECT_NAME": project, "PHOENIX_API_KEY": API_KEY,
    }, tmp_path, session)
    assert done.returncode == 0, done.stderr
    assert "lmscope:" not in done.stderr and "Failed to export" not in done.stderr, done.stderr
    assert API_KEY not in done.stdout + done.stderr + trace_file.read_text()
    assert "TOOL" in done.stdout

    recorded = {record.span_id: record for record in read_trace_file(trace_file)}
    # The project goes on the Phoenix copies' resource only: the file keeps lmscope's own.
    assert not [r for r in recorded.values() if semconv.PROJECT_NAME in r.resource]
    stored = project_spans(phoenix_server, project)
    # Phoenix ingests in the background after answering: read until everything arrived (or a stable count).
    for _ in range(40):
        if len(stored) >= len(recorded):
            break
        time.sleep(0.25)
        stored = project_spans(phoenix_server, project)

    # Every span once, under this project only.
    assert Counter(span["context"]["span_id"] for span in stored).most_common(1)[0][1] == 1
    assert sorted(span["context"]["span_id"] for span in stored) == sorted(recorded)
    assert not [span for span in project_spans(phoenix_server, "default")
                if span["context"]["span_id"] in recorded]

    by_id = {span["context"]["span_id"]: span for span in stored}
    # The tree, span for span: same trace, same parent, same name.
    assert {sid: (s["context"]["trace_id"], s["parent_id"], s["name"]) for sid, s in by_id.items()} == {
        sid: (r.trace_id, r.parent_span_id, r.name) for sid, r in recorded.items()}
    # Kinds as lmscope wrote them; the demo's module, retriever and LM steps, and the tool step the app adds.
    assert {sid: s["span_kind"] for sid, s in by_id.items()} == {
        sid: r.attributes[semconv.SPAN_KIND] for sid, r in recorded.items()}
    assert set(Counter(s["span_kind"] for s in stored)) == {"CHAIN", "RETRIEVER", "LLM", "TOOL"}

    _assert_tokens_match_the_bill(by_id, recorded, bill)
    _assert_session(phoenix_server, project, session, by_id, recorded)
    for sid, record in recorded.items():
        if record.attributes[semconv.SPAN_KIND] == "LLM":
            assert_messages_stored(by_id[sid]["attributes"], record.attributes)


def _assert_tokens_match_the_bill(by_id: dict[str, dict[str, Any]], recorded: dict[str, SpanRecord],
                                  bill: list[dict[str, Any]]) -> None:
    """Each LM call's token counts in Phoenix are the ones the stand-in LM billed for it; cache hits bill nothing."""
    keys = (semconv.LLM_TOKEN_COUNT_PROMPT, semconv.LLM_TOKEN_COUNT_COMPLETION, semconv.LLM_TOKEN_COUNT_CACHE_READ)
    calls = [sid for sid, r in recorded.items() if r.attributes[semconv.SPAN_KIND] == "LLM"]
    billed_calls = [sid for sid in calls if not recorded[sid].attributes.get(semconv.CACHE_HIT)]
    stored_counts = sorted(tuple(_token(by_id[sid]["attributes"], key) for key in keys) for sid in billed_calls)
    billed_counts = sorted((usage["prompt_tokens"], usage["completion_tokens"],
                            usage["prompt_tokens_details"]["cached_tokens"]) for usage in bill)
    assert stored_counts == billed_counts
    assert all(_token(by_id[sid]["attributes"], key) == 0 for sid in calls if sid not in billed_calls for key in keys)
    totals = [sum(counts[i] for counts in stored_counts) for i in range(3)]
    assert totals[0] > 0 and totals[1] > 0 and len(billed_calls) == len(bill) == 10, (totals, len(bill))


def _assert_session(url: str, project: str, session: str, by_id: dict[str, dict[str, Any]],
                    recorded: dict[str, SpanRecord]) -> None:
    """Every span carries the session, and Phoenix groups all the run's traces under it."""
    assert {s["attributes"].get(semconv.SESSION_ID) for s in by_id.values()} == {session}
    [stored_session] = project_sessions(url, project)
    assert stored_session["session_id"] == session
    assert sorted(t["trace_id"] for t in stored_session["traces"]) == sorted({r.trace_id for r in recorded.values()})
