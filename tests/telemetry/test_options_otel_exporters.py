"""OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER: standard aliases of `exporters` and `metrics_exporters`.

They rank as every standard variable does: below the argument and LMSCOPE_*, above [tool.lmscope]. A value lmscope
cannot honour is another tool's business: one warning naming the variable and value, and the next layer decides.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lmscope.telemetry._options import resolve_options

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(("value", "exporters"), [
    ("otlp", ("otlp",)), ("console", ("console",)), ("none", ("none",)), ("otlp,console", ("otlp", "console")),
    (" OTLP , console ", ("otlp", "console")), ("console,console", ("console",)),
])
def test_otel_traces_exporter_names_the_span_exporters(monkeypatch: pytest.MonkeyPatch, value: str,
                                                       exporters: tuple[str, ...]) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    options = resolve_options()
    assert (options.exporters, options.sources["exporters"]) == (exporters, "OTEL_TRACES_EXPORTER")


@pytest.mark.parametrize(("value", "exporters"), [
    ("otlp", ("otlp",)), ("prometheus", ("prometheus",)), ("console", ("console",)), ("none", ("none",)),
    ("otlp,prometheus", ("otlp", "prometheus")),
])
def test_otel_metrics_exporter_names_the_metrics_exporters(monkeypatch: pytest.MonkeyPatch, value: str,
                                                           exporters: tuple[str, ...]) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", value)
    options = resolve_options()
    assert (options.metrics_exporters, options.sources["metrics_exporters"]) == (exporters, "OTEL_METRICS_EXPORTER")


def test_the_otlp_exporter_they_choose_reads_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter chosen by the standard variable is chosen: its own options are read (otlp_protocol here)."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert resolve_options().otlp_protocol == "grpc"


def test_precedence_argument_then_lmscope_variable_then_standard_then_pyproject(
        monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    (clean_env / "pyproject.toml").write_text('[tool.lmscope]\nexporters = ["file"]\nmetrics_exporters = ["console"]\n',
                                              encoding="utf-8")
    table = f"{clean_env / 'pyproject.toml'} [tool.lmscope]"
    options = resolve_options()
    assert (options.exporters, options.sources["exporters"]) == (("file",), table)
    assert (options.metrics_exporters, options.sources["metrics_exporters"]) == (("console",), table)

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    options = resolve_options()
    assert (options.exporters, options.metrics_exporters) == (("otlp",), ("prometheus",))

    monkeypatch.setenv("LMSCOPE_EXPORTERS", "mlflow")
    monkeypatch.setenv("LMSCOPE_METRICS_EXPORTERS", "otlp")
    options = resolve_options()
    assert (options.exporters, options.sources["exporters"]) == (("mlflow",), "LMSCOPE_EXPORTERS")
    assert (options.metrics_exporters, options.sources["metrics_exporters"]) == (("otlp",), "LMSCOPE_METRICS_EXPORTERS")

    options = resolve_options(exporters=["console"], metrics_exporters="none")
    assert (options.exporters, options.sources["exporters"]) == (("console",), "argument")
    assert (options.metrics_exporters, options.sources["metrics_exporters"]) == (("none",), "argument")


@pytest.mark.parametrize(("value", "problem"), [
    ("zipkin", "unknown exporter 'zipkin'"),
    ("jaeger", "unknown exporter 'jaeger'"),  # the SDK's removed Jaeger exporter, not lmscope's jaeger preset
    ("otlp,zipkin", "unknown exporter 'zipkin'"),
    ("file", "unknown exporter 'file'"),
    ("none,otlp", "'none' cannot be combined with other exporters: 'none,otlp'"),
])
def test_a_traces_exporter_lmscope_cannot_honour_warns_and_the_next_layer_decides(
        monkeypatch: pytest.MonkeyPatch, clean_env: Path, caplog: pytest.LogCaptureFixture, value: str,
        problem: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options()
        resolve_options()  # once per process
    assert (options.exporters, options.sources["exporters"]) == (("console",), "default")
    assert [record.getMessage() for record in caplog.records] == [
        f"lmscope: ignoring OTEL_TRACES_EXPORTER={value!r}: {problem} (allowed: otlp, console, none); "
        "lmscope uses exporters=('console',) (default) instead"]


def test_a_bad_standard_value_falls_back_to_pyproject(monkeypatch: pytest.MonkeyPatch, clean_env: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    pyproject = clean_env / "pyproject.toml"
    pyproject.write_text('[tool.lmscope]\nexporters = "file"\nmetrics_exporters = "prometheus"\n', encoding="utf-8")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "logging")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options()
    assert (options.exporters, options.metrics_exporters) == (("file",), ("prometheus",))
    assert sorted(record.getMessage() for record in caplog.records) == [
        "lmscope: ignoring OTEL_METRICS_EXPORTER='logging': unknown exporter 'logging' (allowed: otlp, prometheus, "
        f"console, none); lmscope uses metrics_exporters=('prometheus',) (from {pyproject} [tool.lmscope]) instead",
        "lmscope: ignoring OTEL_TRACES_EXPORTER='zipkin': unknown exporter 'zipkin' (allowed: otlp, console, none); "
        f"lmscope uses exporters=('file',) (from {pyproject} [tool.lmscope]) instead",
    ]


def test_a_bad_lmscope_variable_is_still_an_error_even_when_the_standard_one_is_good(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lmscope import ConfigError

    monkeypatch.setenv("LMSCOPE_EXPORTERS", "zipkin")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(ConfigError, match=r"^lmscope: exporters: unknown exporter 'zipkin' \(from LMSCOPE_EXPORTERS\)"):
        resolve_options()


def test_an_empty_standard_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", " ")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options()
    assert (options.exporters, options.metrics_exporters, caplog.records) == (("console",), ("none",), [])


APP = """
import json, logging, sys
import lmscope
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s:%(message)s")
if sys.argv[1] == "app-provider":
    trace.set_tracer_provider(TracerProvider())  # as opentelemetry-instrument does, with its own exporters
handle = lmscope.instrument()
print(json.dumps(list(handle.exporters)))
"""


@pytest.mark.parametrize(("setup", "exporters", "note"), [("app-provider", ["none"], True),
                                                           ("fresh", ["otlp"], False)])
def test_otel_traces_exporter_is_not_applied_twice_through_the_apps_provider(setup: str, exporters: list[str],
                                                                             note: bool, clean_env: Path) -> None:
    """The SDK's own setup (opentelemetry-instrument, the distro) reads OTEL_TRACES_EXPORTER too, and lmscope's spans
    join the app's provider: exporting them again from the same variable would send each span twice."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", APP, setup], capture_output=True, text=True, env=env, timeout=60,
                          check=True, cwd=clean_env)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == exporters
    assert ("OTEL_TRACES_EXPORTER=otlp is not applied a second time" in done.stderr) is note, done.stderr
