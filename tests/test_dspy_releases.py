"""One lmscope, every supported DSPy release: the same app exports the same trace on DSPy 3.0-3.3 as on the newest.

tests/dspy_release_app.py (the demo's RAG program: fresh, cached, under `dspy.context`, a threaded batch) runs once in
this venv (the newest DSPy, on `engine="litellm"`) and once in each old-DSPy venv .ci/test.sh builds (TEST_DSPY_VENVS),
every run against a stand-in LM server of its own. Each run's LM spans must carry exactly the tokens its server billed
and LiteLLM's price for them, and every old release's trace must have the newest one's tree, tokens and cost.

The app runs as a subprocess with the lmscope package this test imported on PYTHONPATH (alone: the repository root
also holds the `telemetry` and `instrumentation` symlinks, which must not import as top-level packages), so an
old venv tests this checkout whatever lmscope it has installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litellm
import pytest
from app_env import app_env
from dspy_release import HAS_ENGINES

import lmscope
from lmscope._lm_server import StandInLM
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._trace_file import read_trace_file
from lmscope.telemetry._trace_records import SpanRecord

APP = Path(__file__).with_name("dspy_release_app.py")
VENVS_ENV = "TEST_DSPY_VENVS"
DEFAULT_VENVS = Path(__file__).resolve().parents[1] / ".venv"
"""Without TEST_DSPY_VENVS: the `dspy-*` venvs .ci/test.sh left here."""
LM_SPAN = "chat gpt-4o-mini"

FIGURES = (
    # What an LM span says the call cost, and how it knows.
    semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_COST, semconv.COST_SOURCE, semconv.LM_ENGINE, semconv.CACHE_HIT, semconv.CACHE_SAVED_USD,
    # A module span's roll-ups of them.
    semconv.USAGE_INPUT_TOKENS, semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHED_TOKENS, semconv.COST_TOTAL_USD,
    semconv.LM_CALLS, semconv.CACHE_HITS, semconv.CACHE_SAVED_TOTAL_USD,
)
"""The attributes compared across releases (settings are not: each release has its own)."""


def _release_venvs() -> Sequence[Path | None]:
    """The venvs to test; [None] when there is none (the test fails, saying how to make them)."""
    listed = os.environ.get(VENVS_ENV)
    found = DEFAULT_VENVS.glob("dspy-*") if listed is None else (Path(venv) for venv in listed.split(os.pathsep))
    return sorted(venv for venv in found if venv.name) or [None]


@pytest.fixture(params=_release_venvs(), ids=lambda venv: venv.name if venv else "none")
def old_dspy_python(request: pytest.FixtureRequest) -> Path:
    """The Python of one old-DSPy venv (tests/conftest.py marks a test using it `dspy_matrix` and `slow`)."""
    venv: Path | None = request.param
    if venv is None:
        where = f"{VENVS_ENV} is empty" if os.environ.get(VENVS_ENV) is not None else \
            f"{VENVS_ENV} is not set and {DEFAULT_VENVS} has no dspy-* venv"
        pytest.fail(f"no old-DSPy venv to test: {where}. "
                    f".ci/test.sh (the README's test command) builds one per DSPy minor before the newest; by hand: "
                    f"python3 -m venv .venv/dspy-3.0 && .venv/dspy-3.0/bin/pip install -e '.[dev]' 'dspy==3.0.*' "
                    f"(then {VENVS_ENV}=$PWD/.venv/dspy-3.0, several separated by '{os.pathsep}')")
    python = venv / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"{VENVS_ENV} names {venv}, which is not a venv ({python} does not exist): "
                    f".ci/test.sh builds the old-DSPy venvs before the suite runs")
    return python


@dataclass(frozen=True)
class Run:
    dspy_version: str
    spans: list[SpanRecord]
    bill: dict[str, dict[str, Any]]
    """The usage block of every answer the run's stand-in server sent, by response id."""


@contextmanager
def _billing_server() -> Iterator[tuple[StandInLM, dict[str, dict[str, Any]]]]:
    """A fresh stand-in LM (nothing in its simulated prompt cache) and its bill."""
    bill: dict[str, dict[str, Any]] = {}
    with StandInLM() as server:
        complete = server.complete

        def billed(body: Any) -> Any:
            completion = complete(body)
            bill[completion.id] = completion.usage()
            return completion

        server.complete = billed  # type: ignore[method-assign]
        yield server, bill


def _lmscope_alone_on_a_path(folder: Path) -> Path:
    """A folder holding only a link to the lmscope package under test: the subprocess's PYTHONPATH."""
    folder.mkdir(exist_ok=True)
    link = folder / "lmscope"
    if not link.exists():
        link.symlink_to(Path(lmscope.__file__).parent, target_is_directory=True)
    return folder


def _run_app(python: Path | str, folder: Path) -> Run:
    trace_file = folder / "trace.jsonl"
    env = app_env("LMSCOPE_", "OTEL_", "PYTHON")
    # A DSPy cache of its own: the first run really calls the LM, as in the newest release's run.
    env.update(DSPY_CACHEDIR=str(folder / "dspy-cache"), LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=str(_lmscope_alone_on_a_path(folder / "path")))
    with _billing_server() as (server, bill):
        done = subprocess.run([str(python), str(APP), server.base_url, str(trace_file)], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(printed["lmscope"]).resolve() == Path(lmscope.__file__).resolve(), "not the lmscope under test"
    return Run(printed["dspy"], read_trace_file(trace_file), bill)


@pytest.fixture(scope="module")
def newest_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The app in this venv, once for all the old releases it is compared with."""
    if not HAS_ENGINES:
        pytest.fail("the old releases are compared with the newest DSPy: run this test in its venv (.venv)")
    return _run_app(sys.executable, tmp_path_factory.mktemp("newest-dspy"))


def _price(usage: dict[str, Any]) -> float:
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini", custom_llm_provider="openai", prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"], cache_read_input_tokens=cached)
    return float(prompt_cost + completion_cost)


def assert_spans_match_the_bill(run: Run) -> None:
    """Every answer the server sent is one LM span with its tokens and LiteLLM's price for them; a DSPy cache hit
    costs nothing and saves what the call it repeats cost."""
    lm_spans = [span.attributes for span in run.spans if span.name == LM_SPAN]
    answered = [attributes for attributes in lm_spans if not attributes[semconv.CACHE_HIT]]
    calls = {attributes[semconv.GEN_AI_RESPONSE_ID]: attributes for attributes in answered}
    assert (len(answered), calls.keys()) == (len(run.bill), run.bill.keys()), \
        f"DSPy {run.dspy_version}: the LM spans are not the server's answers, one each"
    for response_id, usage in run.bill.items():
        call = calls[response_id]
        assert (call[semconv.GEN_AI_USAGE_INPUT_TOKENS], call[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
                call[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]) == (
            usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]["cached_tokens"])
        assert call[semconv.GEN_AI_USAGE_COST] == pytest.approx(_price(usage), rel=1e-9, abs=0)
    hits = [attributes for attributes in lm_spans if attributes[semconv.CACHE_HIT]]
    assert hits, f"DSPy {run.dspy_version}: the demo's second run is served by DSPy's cache"
    for hit in hits:
        assert (hit[semconv.GEN_AI_USAGE_INPUT_TOKENS], hit[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
                hit[semconv.GEN_AI_USAGE_COST]) == (0, 0, 0.0)
        assert hit[semconv.CACHE_SAVED_USD] == calls[hit[semconv.GEN_AI_RESPONSE_ID]][semconv.GEN_AI_USAGE_COST]


def _figure(value: Any) -> Any:
    # A roll-up adds the costs of concurrent batch items in the order they finish: compare 12 significant digits.
    return float(f"{value:.12g}") if isinstance(value, float) else value


def span_tree(spans: list[SpanRecord]) -> list[Any]:
    """Nested (name, status, {figure: value}, [children]); roots (one per program call) and siblings in start order,
    except batch items, in batch order (they run on threads: their start order is not the program's)."""
    children: dict[str | None, list[SpanRecord]] = {}
    ids = {span.span_id for span in spans}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)

    def node(span: SpanRecord) -> tuple[Any, ...]:
        figures = {key: _figure(span.attributes[key]) for key in FIGURES if key in span.attributes}
        below = sorted(children.get(span.span_id, []),
                       key=lambda child: (child.attributes.get(semconv.BATCH_INDEX, -1), child.start_ns))
        return span.name, span.status_code, figures, [node(child) for child in below]

    return [node(root) for root in sorted(children.get(None, []), key=lambda span: span.start_ns)]


def test_an_old_dspy_release_exports_the_newest_ones_trace(old_dspy_python: Path, newest_run: Run,
                                                           tmp_path: Path) -> None:
    old_run = _run_app(old_dspy_python, tmp_path)
    assert old_run.dspy_version != newest_run.dspy_version, f"{old_dspy_python} has the newest DSPy too"

    assert_spans_match_the_bill(newest_run)
    assert_spans_match_the_bill(old_run)
    # The demo's batch items ask concurrently, but no two of them share a longer prompt prefix than either shares
    # with an earlier, sequential question: the stand-in's simulated prompt cache bills the same cached tokens (and
    # so the same cost) whatever order they arrive in.
    assert span_tree(old_run.spans) == span_tree(newest_run.spans)
