"""`lmscope run` and `opentelemetry-instrument` in either order: each does its part once, in the app's process.

The distro sets the SDK up and its OTLP exporter sends every span to the receiver once; DSPy is instrumented once
(one span per module and LM call) by `lmscope.instrument()`, whose own exporters (the file here), metrics and
`track()` work as without OpenTelemetry's launcher; the app's sitecustomize still runs once in the app. Both
launchers are Python programs that exec the next command (one pid throughout), so the app's sitecustomize notes
the script it runs for: only the app's own line counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from otel_launcher import APP, QA_TREE, launcher, otel_env, span_tree

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._trace_file import read_trace_file

pytestmark = pytest.mark.slow

TRACKED_APP = APP + textwrap.dedent("""
    import lmscope

    with lmscope.track() as usage:
        QA()(question="What is the capital of Germany?")
    print(json.dumps({"instrumented": lmscope.active() is not None, "tracked_calls": usage.total()["calls"]}))
""")

APP_SITE = "import os, sys\nwith open(os.environ['APP_SITE_MARKS'], 'a') as marks:\n    marks.write(sys.argv[0] + '\\n')\n"


LMSCOPE_RUN = [sys.executable, "-m", "lmscope", "run", "--"]


def _run(tools, app_text, workdir, lm_server, receiver, **extra_env):
    """Runs app_text as app.py under `tools` (launchers in the order given); returns (app path, finished process)."""
    app = workdir / "app.py"
    app.write_text(app_text)
    done = subprocess.run([*tools, sys.executable, str(app), lm_server.base_url],
                          env=otel_env(workdir, receiver, **extra_env), cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return app, done


@pytest.mark.parametrize("order", ["lmscope run first", "opentelemetry-instrument first"])
def test_each_tool_does_its_part_once(order, clean_env, lm_server, receiver):
    site_dir = clean_env / "appsite"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(APP_SITE)
    marks = clean_env / "marks.txt"
    trace_file = clean_env / "traces.jsonl"
    tools = [*LMSCOPE_RUN, str(launcher())] if order == "lmscope run first" else [str(launcher()), *LMSCOPE_RUN]
    app, done = _run(tools, TRACKED_APP, clean_env, lm_server, receiver, LMSCOPE_EXPORTERS="file",
                     LMSCOPE_FILE_PATH=str(trace_file), LMSCOPE_METRICS_EXPORTERS="console",
                     APP_SITE_MARKS=str(marks),
                     PYTHONPATH=os.pathsep.join(filter(None, [str(site_dir), os.environ.get("PYTHONPATH")])))

    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"instrumented": True, "tracked_calls": 1}
    spans = receiver.spans()
    received = sorted(span.span_id.hex() for span in spans)
    assert len(received) == len(set(received)), "a span reached the receiver twice"
    assert span_tree(spans) == QA_TREE * 2  # one span per module and LM call: DSPy instrumented once
    assert sorted(record.span_id for record in read_trace_file(trace_file)) == received
    assert semconv.METRIC_MODULE_DURATION in done.stderr  # lmscope's console metrics exporter
    assert marks.read_text().splitlines().count(str(app)) == 1


def test_track_counts_the_calls_of_lmscopes_instrumentors_under_opentelemetry_instrument_alone(
        clean_env, lm_server, receiver):
    """Without `lmscope.instrument()`, the `lmscope_dspy` entry point traces DSPy: `track()` counts those calls (it
    raised "call lmscope.instrument() first")."""
    _, done = _run([str(launcher())], TRACKED_APP, clean_env, lm_server, receiver)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"instrumented": False, "tracked_calls": 1}
    assert span_tree(receiver.spans()) == QA_TREE * 2


def test_with_lmscope_off_by_a_bad_option_dspy_is_traced_as_under_opentelemetry_instrument_alone(
        clean_env, lm_server, receiver):
    """The bootstrap keeps the `lmscope_dspy` entry point off for `lmscope.instrument()`: when that fails, it
    instruments DSPy as the entry point would have."""
    _, done = _run([str(launcher()), *LMSCOPE_RUN], APP, clean_env, lm_server, receiver, LMSCOPE_EXPORTERS="jagger")
    assert "lmscope run: instrumentation is off" in done.stderr
    assert span_tree(receiver.spans()) == QA_TREE


CHILD_APP = textwrap.dedent("""
    import subprocess, sys

    STATE = "import lmscope; from opentelemetry import trace; "
    STATE += "print({who!r}, lmscope.active() is not None, type(trace.get_tracer_provider()).__name__, flush=True)"
    exec(STATE.format(who="app"))
    subprocess.run([sys.executable, "-c", STATE.format(who="child")], check=True)
""")


@pytest.mark.parametrize("order", ["lmscope run first", "opentelemetry-instrument first"])
def test_children_asks_for_lmscope_in_every_process_under_opentelemetry_instrument(order, clean_env, lm_server,
                                                                                   receiver):
    """OpenTelemetry's initialize() puts its directory back first on PYTHONPATH: the bootstrap goes in front again."""
    run_children = [sys.executable, "-m", "lmscope", "run", "--children", "--"]
    tools = [*run_children, str(launcher())] if order == "lmscope run first" else [str(launcher()), *run_children]
    _, done = _run(tools, CHILD_APP, clean_env, lm_server, receiver, LMSCOPE_EXPORTERS="none")
    assert done.stdout.splitlines() == ["app True TracerProvider", "child True TracerProvider"]
    assert "Overriding of current TracerProvider" not in done.stderr  # the SDK set up once in each process
