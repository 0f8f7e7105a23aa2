"""The user's view: `lmscope.instrument()` with real exporters, the CLI, `lmscope run`, the demo.

Each test that instruments runs in a fresh interpreter: the global TracerProvider can be set only once
per process, and these tests are about exactly that global, first-minute experience.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

import lmscope
from lmscope.telemetry._trace_file import read_trace_file

SECRET = "sk-test-SECRET-do-not-leak-4242"

_APP = textwrap.dedent("""
    import sys
    import dspy
    import lmscope

    handle = lmscope.instrument(exporters=["file", "console"], file_path=sys.argv[2])
    assert lmscope.instrument() is handle  # a second call is harmless and returns the same handle
    lm = dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key=sys.argv[3],
                 headers={"Authorization": "Bearer " + sys.argv[3]})
    dspy.configure(lm=lm)
    with lmscope.track() as usage, lmscope.context(session_id="s-9"):
        answer = dspy.ChainOfThought("question -> answer")(question="What is the capital of France?").answer
    lmscope.force_flush()
    print("ANSWER", answer)
    print("USAGE", usage.by_model())
""")


def _run(args, env_extra=None, timeout=180):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # the LM's custom headers take DSPy's LiteLLM engine: the app imports LiteLLM, about 9 s
def test_instrument_writes_otlp_json_file_and_console_tree_without_secrets(tmp_path, lm_server):
    trace_file = tmp_path / "traces.jsonl"
    done = _run([sys.executable, "-c", _APP, lm_server.base_url, str(trace_file), SECRET],
                {"OTEL_SERVICE_NAME": "checkout-app"})
    assert done.returncode == 0, done.stderr

    records = read_trace_file(trace_file)
    assert sorted(r.name for r in records) == ["chain_of_thought", "chain_of_thought.predict", "chat gpt-4o-mini"]
    assert {r.resource["service.name"] for r in records} == {"checkout-app"}
    assert {r.attributes["session.id"] for r in records} == {"s-9"}
    call = next(r for r in records if r.name == "chat gpt-4o-mini")
    assert "'calls': 1" in done.stdout and f"'input_tokens': {call.attributes['gen_ai.usage.input_tokens']}" \
        in done.stdout
    # The console tree printed the same trace.
    assert "chain_of_thought.predict" in done.stderr and "chat gpt-4o-mini" in done.stderr
    # The key went to the LM server as a header but reached no exported byte and no log line.
    for text in (trace_file.read_text(), done.stderr, done.stdout):
        assert SECRET not in text
    line = json.loads(trace_file.read_text().splitlines()[0])
    assert set(line) == {"resourceSpans"}
    assert all(len(span["traceId"]) == 32 for rs in line["resourceSpans"] for ss in rs["scopeSpans"]
               for span in ss["spans"])


_BROKEN_INSTRUMENTOR_APP = textwrap.dedent("""
    import sys
    import lmscope
    from lmscope.instrumentation.dspy import DSPyInstrumentor

    patch_everything = DSPyInstrumentor.instrument

    def instrument_then_fail(self, *args, **kwargs):  # as a DSPy with an unknown layout would, half-way
        patch_everything(self, *args, **kwargs)
        raise AttributeError("module 'dspy' has no attribute 'Predict'")

    DSPyInstrumentor.instrument = instrument_then_fail
    lmscope.instrument(exporters=["none"])
    import dspy  # the post-import hook runs here: its fault must not come out of the app's import

    patched = [f"{owner.__name__}.{name}" for owner in (dspy.Module, dspy.clients.base_lm.BaseLM)
               for name, value in vars(owner).items() if getattr(value, "__module__", "").startswith("lmscope")]
    print("PATCHED", patched)
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-x"))
    print("ANSWER", dspy.Predict("question -> answer")(question="What is the capital of France?").answer)
""")


def test_a_fault_while_instrumenting_dspy_leaves_it_untraced_and_working(lm_server):
    # Without PYTEST_CURRENT_TEST the child is an ordinary app: lmscope logs its own fault instead of re-raising it.
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}
    done = subprocess.run([sys.executable, "-c", _BROKEN_INSTRUMENTOR_APP, lm_server.base_url], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "PATCHED []" in done.stdout  # the partial patches were undone: DSPy is exactly as it was
    assert "ANSWER A stand-in answer to: What is the capital of France?" in done.stdout
    [warning] = [line for line in done.stderr.splitlines() if "internal error" in line]
    assert "instrumenting dspy (DSPy runs untraced)" in warning and "has no attribute 'Predict'" in warning


def test_bad_option_fails_at_instrument_with_one_clear_line():
    with pytest.raises(lmscope.ConfigError) as caught:
        lmscope.instrument(exporters=["jagger"])
    assert str(caught.value).startswith("lmscope: exporters: unknown exporter 'jagger' (from argument); allowed:")
    assert "\n" not in str(caught.value)


_SCRUBBING_APP = textwrap.dedent("""
    import sys
    import dspy
    import lmscope

    seen = []

    def keep_ticket_ids(match: lmscope.ScrubMatch):
        seen.append(type(match).__name__)
        return match.value if match.path[-1] == "ticket_token" else None

    lmscope.instrument(exporters=["file"], file_path=sys.argv[2], scrub_patterns=[r"ACCT-[0-9]{6}"],
                       scrub_callback=keep_ticket_ids, max_content_chars=2000)
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-x", cache=False))
    secret = sys.argv[3]
    with lmscope.context(metadata={"api_key": secret}):
        dspy.Predict("question, ticket_token -> answer")(
            ticket_token="T-1", question=f"Why is {secret} refused for ACCT-123456? " + "Please help. " * 400)
    lmscope.force_flush()
    print("SEEN", sorted(set(seen)))
""")


def test_instrument_scrubs_and_limits_what_it_exports(tmp_path, lm_server):
    """The public options end to end: what reaches the exported file is scrubbed, limited and marked."""
    trace_file = tmp_path / "traces.jsonl"
    secret = "sk-proj-" + "Zx9Yw8Vu7" * 4
    done = _run([sys.executable, "-c", _SCRUBBING_APP, lm_server.base_url, str(trace_file), secret])
    assert done.returncode == 0, done.stderr
    assert "SEEN ['ScrubMatch']" in done.stdout
    exported = trace_file.read_text()
    assert secret not in exported and "ACCT-123456" not in exported
    records = read_trace_file(trace_file)
    predict = next(r for r in records if r.name == "predict")
    assert predict.attributes["lmscope.scrubbed"] is True
    assert predict.attributes["metadata"] == '{"api_key": "[REDACTED]"}'
    value = predict.attributes["input.value"]
    # The callback kept the value under `ticket_token` (a credential key by its name), redacted the rest.
    assert value.startswith('{"ticket_token": "T-1", "question": "Why is [REDACTED] refused for [REDACTED]? Please')
    assert len(value) == 2000 and value.endswith(" chars]")
    assert all(len(str(v)) <= 2000 for r in records for v in r.attributes.values())


def test_scrub_match_is_public():
    assert "ScrubMatch" in lmscope.__all__
    match = lmscope.ScrubMatch(path=("input.value", "api_key"), value="k", pattern_match=re.search("key", "api_key"))
    assert (match.path, match.value, match.pattern_match.group(0)) == (("input.value", "api_key"), "k", "key")


def test_track_without_instrument_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"call lmscope.instrument\(\) first"), lmscope.track():
        pass


def test_import_lmscope_imports_neither_dspy_nor_litellm():
    done = _run([sys.executable, "-c", "import sys, lmscope; print('dspy' in sys.modules, 'litellm' in sys.modules)"])
    assert done.stdout.split() == ["False", "False"]


def test_lmscope_run_instruments_an_unmodified_app(tmp_path, lm_server):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(f"""
        import dspy
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base="{lm_server.base_url}", api_key="sk-x"))
        print(dspy.Predict("question -> answer")(question="Which river flows through Paris?").answer)
    """))
    trace_file = tmp_path / "run.jsonl"
    done = _run([sys.executable, "-m", "lmscope", "run", "--exporters", "file", "--", sys.executable, str(app)],
                {"LMSCOPE_FILE_PATH": str(trace_file)})
    assert done.returncode == 0, done.stderr
    assert sorted(r.name for r in read_trace_file(trace_file)) == ["chat gpt-4o-mini", "predict"]


def test_lmscope_run_passes_the_commands_own_double_dash_through(tmp_path):
    done = _run([sys.executable, "-m", "lmscope", "run", "--exporters", "none", "--", sys.executable, "-c",
                 "import sys; print(sys.argv[1:])", "a", "--", "b"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a', '--', 'b']"


def test_demo_runs_offline_and_cli_reads_its_file(tmp_path):
    trace_file = tmp_path / "demo.jsonl"
    done = _run([sys.executable, "-m", "lmscope", "demo", "--file", str(trace_file)],
                {"DSPY_CACHEDIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    for heading in ("1. fresh run", "2. the same question again", "3. under dspy.context", "4. a threaded batch"):
        assert heading in done.stdout
    assert "cache:memory" in done.stderr  # the console tree shows the cached run's hits

    records = read_trace_file(trace_file)
    assert len({r.trace_id for r in records}) == 4
    lm_calls = [r for r in records if r.name == "chat gpt-4o-mini"]
    assert len(lm_calls) == 12
    total_cost = sum(r.attributes["gen_ai.usage.cost"] for r in lm_calls)
    report = _run([sys.executable, "-m", "lmscope", "report", str(trace_file)])
    assert report.returncode == 0
    total_line = next(line for line in report.stdout.splitlines() if line.startswith("total"))
    assert f"${total_cost:.6f}" in total_line
    assert total_line.split()[1] == "12"
    # The summary the demo printed agrees with the file to the cent.
    summary = next(line for line in done.stdout.splitlines() if line.startswith("gpt-4o-mini"))
    assert float(summary.split()[-2]) == pytest.approx(total_cost, abs=5e-7)
    tree = _run([sys.executable, "-m", "lmscope", "tree", str(trace_file)])
    assert tree.stdout.count("rag.batch") == 1 and "batch[2]" in tree.stdout


def test_cli_names_a_broken_trace_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    done = _run([sys.executable, "-m", "lmscope", "tree", str(bad)])
    assert done.returncode == 1  # nothing could be read
    assert done.stderr.splitlines() == [f"{bad}: skipped 1 unreadable line (1)",
                                        f"lmscope tree: no span could be read from {bad}"]
