"""`lmscope run` next to `opentelemetry-instrument`, in either order: what the bootstrap does about it.

Both put a directory with a `sitecustomize` first on PYTHONPATH and exec the command they were given. OpenTelemetry's
`sitecustomize` runs no other one, and its launcher always puts its own directory first, so:

- `opentelemetry-instrument lmscope run -- python app.py` composes as it is: lmscope's bootstrap comes first in the
  app and runs OpenTelemetry's `sitecustomize` (the distro's SDK setup), then the app's one it shadowed, then
  `lmscope.instrument()`, which joins the distro's TracerProvider. The `lmscope_dspy` entry point is kept off while
  OpenTelemetry loads its instrumentors: `lmscope.instrument()` patches DSPy itself, with lmscope's metrics and
  options, and DSPy's classes can be patched once. With `--children`, the bootstrap goes back in front of
  OpenTelemetry's directory on PYTHONPATH after OpenTelemetry's initialize() put that first again.
- `lmscope run -- opentelemetry-instrument python app.py` would run the bootstrap in the launcher, a Python program
  about to exec the app, and never in the app. So in the launcher the bootstrap only turns the command line into the
  order above (`behind_launcher`) and leaves the environment as `lmscope run` found it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

ENTRY_POINTS = {"lmscope_dspy": ("dspy", "DSPyInstrumentor"), "lmscope_litellm": ("litellm", "LiteLLMInstrumentor")}
"""lmscope's `opentelemetry_instrumentor` entry points (pyproject.toml): the module under `lmscope.instrumentation`
and the instrumentor class each names."""
_DISABLED = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
_FLAGS = frozenset({"-h", "--help", "--version"})
"""The launcher's options that take no value; every other one takes the next argument unless it has `=value`."""


def behind_launcher(argv: Sequence[str], children: bool) -> list[str]:
    """The launcher's argv with `python -m lmscope run [--children] --` put in front of the command it runs.

    The launcher then execs `lmscope run`, whose bootstrap goes in front of OpenTelemetry's directory for the app.
    Without a command (`--help`, `--version`) it is returned as it is.
    """
    index = 1
    while index < len(argv):
        argument = argv[index]
        if argument == "--":
            index += 1
            break
        if not argument.startswith("-") or argument == "-":
            break
        index += 1 if "=" in argument or argument in _FLAGS else 2
    if index >= len(argv):
        return list(argv)
    run = [sys.executable, "-m", "lmscope", "run", *(["--children"] if children else []), "--"]
    return [*argv[:index], *run, *argv[index:]]


@contextmanager
def entry_point_off() -> Iterator[None]:
    """OpenTelemetry's auto-instrumentation skips lmscope's entry points meanwhile; the variable is put back after,
    so the processes the app starts load them as they would under `opentelemetry-instrument` alone."""
    before = os.environ.get(_DISABLED)
    os.environ[_DISABLED] = ",".join(filter(None, [before, *ENTRY_POINTS]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_DISABLED, None)
        else:
            os.environ[_DISABLED] = before


def instrument_as_opentelemetry_would() -> None:
    """DSPy and LiteLLM traced through the distro's providers, as the entry points would have: for when
    `lmscope.instrument()` failed after they were kept off for it. Not those the user turned off."""
    import importlib

    disabled = {name.strip() for name in os.environ.get(_DISABLED, "").split(",")}
    for entry_point, (module, name) in ENTRY_POINTS.items():
        if not disabled & {entry_point, "*"}:
            instrumentor = getattr(importlib.import_module(f".instrumentation.{module}", __package__), name)
            instrumentor().instrument(skip_dep_check=True)
