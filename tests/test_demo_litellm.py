"""`lmscope demo --litellm`, run as a user runs it: a plain LiteLLM app traced against the stand-in server, whose
bill the demo prints and every figure lmscope shows must equal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lmscope.telemetry._trace_file import read_trace_file


@pytest.mark.slow  # a fresh interpreter importing LiteLLM, and LiteLLM's first call: about 6 s
def test_litellm_demo_traces_a_plain_litellm_app_with_the_servers_bill(tmp_path: Path) -> None:
    trace_file = tmp_path / "demo.jsonl"
    done = subprocess.run([sys.executable, "-m", "lmscope", "demo", "--litellm", "--file", str(trace_file)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "DSPY_CACHEDIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. litellm.completion", "2. litellm.completion(stream=True)", "3. litellm.embedding"):
        assert heading in out
    billed = re.search(r"stand-in LM server billed: (\d+) chat requests, (\d+) prompt \+ (\d+) completion tokens; "
                       r"(\d+) embedding requests, (\d+) tokens", out)
    assert billed is not None, out
    chat_requests, prompt, completion, embedding_requests, embedding_tokens = map(int, billed.groups())
    assert (chat_requests, embedding_requests) == (2, 1)

    # The console tree (stderr): one trace per call, each span with its tokens.
    tree = [line for line in done.stderr.splitlines() if line.startswith(("chat ", "embeddings "))]
    assert [line.split("  ")[0] for line in tree] == ["chat gpt-4o-mini", "chat gpt-4o-mini",
                                                      "embeddings text-embedding-3-small"]
    tokens = [tuple(map(int, re.search(r"in (\d+)  out (\d+)", line).groups())) for line in tree]  # type: ignore[union-attr]
    assert sum(i for i, _ in tokens[:2]) == prompt and sum(o for _, o in tokens[:2]) == completion
    assert tokens[2] == (embedding_tokens, 0)

    # The trace file: the same three spans, as three traces, the stream's with the provider's usage (not estimated).
    records = read_trace_file(trace_file)
    assert [r.name for r in records] == ["chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    assert len({r.trace_id for r in records}) == 3 and all(r.parent_span_id is None for r in records)
    assert [(r.attributes["gen_ai.usage.input_tokens"], r.attributes.get("gen_ai.usage.output_tokens", 0))
            for r in records] == tokens
    assert "lmscope.usage.estimated" not in records[1].attributes
    assert records[1].attributes["gen_ai.response.time_to_first_chunk"] > 0

    # track()'s summary the demo printed: per model, the server's bill.
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("gpt-4o-mini ", "text-embedding-3-small "))}
    assert rows["gpt-4o-mini"][1:5] == ["2", "0", str(prompt), str(completion)]
    assert rows["text-embedding-3-small"][1:5] == ["1", "0", str(embedding_tokens), "0"]
    cost = sum(r.attributes["gen_ai.usage.cost"] for r in records)
    assert sum(float(row[-2]) for row in rows.values()) == pytest.approx(cost, abs=1e-6)
