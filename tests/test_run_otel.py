"""lmscope/_run_otel.py: the launcher's command line handed to `lmscope run`, the entry point kept off for a while.
The real runs, in both orders: tests/instrumentation/test_run_with_opentelemetry_instrument.py."""

from __future__ import annotations

import os
import sys

import pytest

from lmscope._run_otel import behind_launcher, entry_point_off

LAUNCHER = "/venv/bin/opentelemetry-instrument"
RUN = [sys.executable, "-m", "lmscope", "run", "--"]


@pytest.mark.parametrize(("options", "command"), [
    ([], ["python", "app.py", "--flag", "x"]),
    (["--traces_exporter", "otlp", "--service_name=svc"], ["python", "-m", "app"]),
    (["--"], ["python", "--", "app.py"]),
    (["--metrics_exporter", "none", "--"], ["./app"]),
])
def test_lmscope_run_goes_in_front_of_the_command(options: list[str], command: list[str]) -> None:
    assert behind_launcher([LAUNCHER, *options, *command], children=False) == [LAUNCHER, *options, *RUN, *command]


def test_children_is_handed_on() -> None:
    assert behind_launcher([LAUNCHER, "python", "app.py"], children=True) == [
        LAUNCHER, sys.executable, "-m", "lmscope", "run", "--children", "--", "python", "app.py"]


@pytest.mark.parametrize("argv", [[LAUNCHER], [LAUNCHER, "--version"], [LAUNCHER, "--service_name", "svc"],
                                  [LAUNCHER, "--"]])
def test_without_a_command_the_launcher_is_left_as_it_is(argv: list[str]) -> None:
    assert behind_launcher(argv, children=False) == argv


@pytest.mark.parametrize("before", [None, "dspy,litellm"])
def test_the_entry_point_is_off_only_meanwhile(monkeypatch: pytest.MonkeyPatch, before: str | None) -> None:
    if before is None:
        monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    else:
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", before)
    with entry_point_off():
        assert os.environ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] == ",".join(
            filter(None, [before, "lmscope_dspy", "lmscope_litellm"]))
    assert os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") == before
