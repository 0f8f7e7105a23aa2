"""Options of the backend presets (jaeger, langfuse, mlflow, phoenix): precedence, when they are read, one-line errors."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from lmscope.telemetry._options import ConfigError, resolve_options

# option, exporter that reads it, argument, LMSCOPE_ env text, (standard variable, its text), TOML string.
# The expected value of every layer is the text given to that layer.
PRESETS = [
    ("jaeger_endpoint", "jaeger", "http://arg:4318", "http://lmscope-env:4318",
     ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-env:4318"), "http://toml:4318"),
    ("jaeger_endpoint", "jaeger", "http://arg:4318", "http://lmscope-env:4318",
     ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel-traces-env:4318/v1/traces"), "http://toml:4318"),
    ("jaeger_protocol", "jaeger", "grpc", "http/protobuf", ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), "http/protobuf"),
    ("langfuse_host", "langfuse", "http://arg:3000", "http://lmscope-env:3000",
     ("LANGFUSE_HOST", "http://langfuse-env:3000"), "http://toml:3000"),
    ("langfuse_host", "langfuse", "http://arg:3000", "http://lmscope-env:3000",
     ("LANGFUSE_BASE_URL", "https://base-url-env"), "http://toml:3000"),
    ("mlflow_tracking_uri", "mlflow", "http://arg:5000", "http://lmscope-env:5000",
     ("MLFLOW_TRACKING_URI", "http://mlflow-env:5000"), "http://toml:5000"),
    ("mlflow_experiment_id", "mlflow", "11", "12", ("MLFLOW_EXPERIMENT_ID", "13"), "14"),
    ("mlflow_experiment_name", "mlflow", "from arg", "from env", ("MLFLOW_EXPERIMENT_NAME", "from mlflow env"),
     "from toml"),
    ("phoenix_endpoint", "phoenix", "http://arg:6006", "http://lmscope-env:6006",
     ("PHOENIX_COLLECTOR_ENDPOINT", "https://app.phoenix.arize.com/s/space"), "http://toml:6006"),
]
DEFAULTS = {"jaeger_endpoint": None, "jaeger_protocol": "http/protobuf", "langfuse_host": "https://cloud.langfuse.com",
            "mlflow_tracking_uri": "http://localhost:5000", "mlflow_experiment_id": None,
            "mlflow_experiment_name": None, "phoenix_endpoint": "http://localhost:6006"}


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize("layers", list(itertools.product([True, False], repeat=4)),
                         ids=lambda used: "".join("1" if u else "0" for u in used))
@pytest.mark.parametrize(("name", "exporter", "arg", "env", "standard", "toml"), PRESETS,
                         ids=[f"{row[0]}-{row[4][0]}" for row in PRESETS])
def test_precedence_argument_lmscope_env_standard_env_pyproject(
        monkeypatch: pytest.MonkeyPatch, clean_env: Path, name: str, exporter: str, arg: str, env: str,
        standard: tuple[str, str], toml: str, layers: tuple[bool, bool, bool, bool]) -> None:
    use_arg, use_env, use_standard, use_toml = layers
    pyproject = clean_env / "pyproject.toml"
    pyproject.write_text(f'[tool.lmscope]\n{name} = "{toml}"\n' if use_toml else "[project]\n")
    if use_env:
        monkeypatch.setenv(f"LMSCOPE_{name.upper()}", env)
    if use_standard:
        monkeypatch.setenv(*standard)
    candidates = [(use_arg, arg, "argument"), (use_env, env, f"LMSCOPE_{name.upper()}"),
                  (use_standard, standard[1], standard[0]),
                  (use_toml, toml, f"{pyproject} [tool.lmscope]"), (True, DEFAULTS[name], "default")]
    expected, source = next((value, source) for used, value, source in candidates if used)

    options = resolve_options(exporters=[exporter], **({name: arg} if use_arg else {}))
    assert (getattr(options, name), options.sources[name]) == (expected, source)


def test_backend_options_are_ignored_when_their_exporter_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables meant for other tools (or broken for them) cannot break a run that does not use the backend."""
    for name, value in (("MLFLOW_TRACKING_URI", "databricks"), ("MLFLOW_EXPERIMENT_ID", " "),
                        ("LANGFUSE_HOST", "cloud.langfuse.com"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                        ("LMSCOPE_JAEGER_PROTOCOL", "http/json"), ("PHOENIX_COLLECTOR_ENDPOINT", "localhost:6006"),
                        ("LMSCOPE_PHOENIX_ENDPOINT", "phoenix")):
        monkeypatch.setenv(name, value)
    options = resolve_options(exporters="console,file")
    assert {name: getattr(options, name) for name in DEFAULTS} == DEFAULTS
    assert {options.sources[name] for name in DEFAULTS} == {"default"}


MLFLOW_ALLOWED = "the http:// or https:// URL of an `mlflow server` (file and database stores cannot receive OTLP)"
LANGFUSE_ALLOWED = "the http:// or https:// base URL of a Langfuse server"
ENDPOINT_ALLOWED = "an http:// or https:// URL with a host, e.g. http://localhost:4318"
PHOENIX_ALLOWED = ("the http:// or https:// base URL of a Phoenix server, e.g. http://localhost:6006 "
                   "(or its /v1/traces URL)")
ERRORS = [
    # lmscope's own variable, its value, exporter, option, the problem as the message says it, what is allowed
    ("LMSCOPE_MLFLOW_TRACKING_URI", "databricks", "mlflow", "mlflow_tracking_uri", "malformed endpoint 'databricks'",
     MLFLOW_ALLOWED),
    ("LMSCOPE_MLFLOW_TRACKING_URI", "file:///srv/mlruns", "mlflow", "mlflow_tracking_uri",
     "malformed endpoint 'file:///srv/mlruns'", MLFLOW_ALLOWED),
    ("LMSCOPE_LANGFUSE_HOST", "cloud.langfuse.com", "langfuse", "langfuse_host",
     "malformed endpoint 'cloud.langfuse.com'", LANGFUSE_ALLOWED),
    ("LMSCOPE_LANGFUSE_HOST", "https://pk:sk-SECRET@langfuse.example:notaport", "langfuse", "langfuse_host",
     "malformed endpoint 'https://***@langfuse.example:notaport'", LANGFUSE_ALLOWED),
    ("LMSCOPE_JAEGER_ENDPOINT", "ftp://collector", "jaeger", "jaeger_endpoint",
     "malformed endpoint 'ftp://collector'", ENDPOINT_ALLOWED),
    ("LMSCOPE_JAEGER_PROTOCOL", "thrift", "jaeger", "jaeger_protocol", "unknown protocol 'thrift'",
     "http/protobuf, grpc, http/json"),
    ("LMSCOPE_PHOENIX_ENDPOINT", "localhost:6006", "phoenix", "phoenix_endpoint",
     "malformed endpoint 'localhost:6006'", PHOENIX_ALLOWED),
    ("LMSCOPE_PHOENIX_ENDPOINT", "grpc://localhost:4317", "phoenix", "phoenix_endpoint",
     "malformed endpoint 'grpc://localhost:4317'", PHOENIX_ALLOWED),
]


@pytest.mark.parametrize(("variable", "value", "exporter", "option", "problem", "allowed"), ERRORS,
                         ids=[f"{row[0]}={row[1]}" for row in ERRORS])
def test_bad_lmscope_backend_values_fail_with_one_line(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                       exporter: str, option: str, problem: str,
                                                       allowed: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        resolve_options(exporters=exporter)
    assert str(caught.value) == f"lmscope: {option}: {problem} (from {variable}); allowed: {allowed}"
    assert "SECRET" not in str(caught.value) and "\n" not in str(caught.value)


WARNINGS = [
    # the other tool's variables, exporter, option, (value, source) lmscope uses, the one warning
    ({"MLFLOW_TRACKING_URI": "databricks"}, "mlflow", "mlflow_tracking_uri", ("http://localhost:5000", "default"),
     "lmscope: ignoring MLFLOW_TRACKING_URI='databricks': malformed endpoint 'databricks' (allowed: "
     f"{MLFLOW_ALLOWED}); lmscope uses mlflow_tracking_uri='http://localhost:5000' (default) instead"),
    # A bad LANGFUSE_BASE_URL: the next layer, LANGFUSE_HOST, is used; the credentials in the URL are masked.
    ({"LANGFUSE_BASE_URL": "https://pk:sk-SECRET@langfuse.example:notaport", "LANGFUSE_HOST": "http://lf:3000"},
     "langfuse", "langfuse_host", ("http://lf:3000", "LANGFUSE_HOST"),
     "lmscope: ignoring LANGFUSE_BASE_URL='https://***@langfuse.example:notaport': malformed endpoint "
     f"'https://***@langfuse.example:notaport' (allowed: {LANGFUSE_ALLOWED}); lmscope uses "
     "langfuse_host='http://lf:3000' (from LANGFUSE_HOST) instead"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}, "jaeger", "jaeger_endpoint", (None, "default"),
     "lmscope: ignoring OTEL_EXPORTER_OTLP_ENDPOINT='ftp://collector': malformed endpoint 'ftp://collector' "
     f"(allowed: {ENDPOINT_ALLOWED}); lmscope uses jaeger_endpoint=None (default) instead"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "jaeger", "jaeger_protocol", ("http/protobuf", "default"),
     "lmscope: ignoring OTEL_EXPORTER_OTLP_PROTOCOL='thrift': unknown protocol 'thrift' (allowed: http/protobuf, "
     "grpc, http/json); lmscope uses jaeger_protocol='http/protobuf' (default) instead"),
    ({"PHOENIX_COLLECTOR_ENDPOINT": "localhost:6006"}, "phoenix", "phoenix_endpoint",
     ("http://localhost:6006", "default"),
     "lmscope: ignoring PHOENIX_COLLECTOR_ENDPOINT='localhost:6006': malformed endpoint 'localhost:6006' (allowed: "
     f"{PHOENIX_ALLOWED}); lmscope uses phoenix_endpoint='http://localhost:6006' (default) instead"),
]


@pytest.mark.parametrize(("env", "exporter", "option", "used", "warning"), WARNINGS,
                         ids=[",".join(row[0]) for row in WARNINGS])
def test_bad_standard_backend_values_warn_once_and_use_the_next_layer(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, env: dict[str, str], exporter: str,
        option: str, used: tuple[object, str], warning: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options(exporters=exporter)
        assert resolve_options(exporters=exporter) == options
    assert (getattr(options, option), options.sources[option]) == used
    assert [record.getMessage() for record in caplog.records] == [warning]
    assert "SECRET" not in caplog.text


def test_unreachable_scheme_fails_at_instrument() -> None:
    import lmscope

    with pytest.raises(ConfigError, match=r"^lmscope: mlflow_tracking_uri: malformed endpoint 'sqlite:///m.db' "
                                          r"\(from argument\)"):
        lmscope.instrument(exporters=["mlflow"], mlflow_tracking_uri="sqlite:///m.db")
    assert lmscope.active() is None
    with pytest.raises(ConfigError, match=r"^lmscope: phoenix_endpoint: malformed endpoint 'phoenix:6006' "
                                          r"\(from argument\)"):
        lmscope.instrument(exporters=["phoenix"], phoenix_endpoint="phoenix:6006")
    assert lmscope.active() is None
