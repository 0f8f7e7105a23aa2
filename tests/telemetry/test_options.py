"""Option resolution: precedence argument > environment > pyproject.toml > default, and one-line errors."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from lmscope.telemetry import _options as options_module
from lmscope.telemetry._options import CAPTURE_ALLOWED, OPTION_NAMES, ConfigError, Options, resolve_options

ALLOWED_OPTIONS = ("service_name, exporters, file_path, otlp_endpoint, otlp_protocol, capture_content, "
                   "scrub, scrub_patterns, max_content_chars, console_stream, max_queue_size, metrics_exporters, prometheus_endpoint, jaeger_endpoint, "
                   "jaeger_protocol, langfuse_host, mlflow_tracking_uri, mlflow_experiment_id, mlflow_experiment_name, "
                   "phoenix_endpoint, export_all_spans")
EXPORTERS_ALLOWED = "console, file, otlp, jaeger, langfuse, mlflow, phoenix, none"


EVERY_EXPORTER: dict[str, object] = {"exporters": "console,file,otlp", "metrics_exporters": "otlp,prometheus"}

pytestmark = pytest.mark.usefixtures("clean_env")


def write_pyproject(directory: Path, body: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    return path


def table_source(path: Path) -> str:
    return f"{path} [tool.lmscope]"


# --- defaults and the shape of the result -------------------------------------------------------------------

def test_defaults_with_nothing_set() -> None:
    options = resolve_options()
    assert options == Options(service_name="lmscope-app", exporters=("console",), file_path="lmscope-traces.jsonl",
                              otlp_endpoint=None, otlp_protocol="http/protobuf", capture_content=True,
                              console_stream="stderr", max_queue_size=8192, metrics_exporters=("none",),
                              prometheus_endpoint="127.0.0.1:9464", jaeger_endpoint=None,
                              jaeger_protocol="http/protobuf", langfuse_host="https://cloud.langfuse.com",
                              mlflow_tracking_uri="http://localhost:5000", mlflow_experiment_id=None,
                              mlflow_experiment_name=None, phoenix_endpoint="http://localhost:6006",
                              export_all_spans=False,
                              otlp_metrics_protocol="http/protobuf")
    assert dict(options.sources) == dict.fromkeys((*OPTION_NAMES, "otlp_metrics_protocol"), "default")
    assert [options.given(name) for name in OPTION_NAMES] == [False] * len(OPTION_NAMES) == [False] * 21


def test_option_names_and_error_type() -> None:
    assert OPTION_NAMES == ("service_name", "exporters", "file_path", "otlp_endpoint", "otlp_protocol",
                            "capture_content", "scrub", "scrub_patterns", "max_content_chars", "console_stream",
                            "max_queue_size", "metrics_exporters",
                            "prometheus_endpoint", "jaeger_endpoint", "jaeger_protocol", "langfuse_host",
                            "mlflow_tracking_uri", "mlflow_experiment_id", "mlflow_experiment_name",
                            "phoenix_endpoint", "export_all_spans")
    # otlp_metrics_protocol is otlp_protocol as the metrics exporter reads it, not an option of its own.
    assert [f.name for f in dataclasses.fields(Options)] == [*OPTION_NAMES, "otlp_metrics_protocol", "sources"]
    assert issubclass(ConfigError, ValueError)


def test_options_are_frozen() -> None:
    options = resolve_options()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.service_name = "other"  # type: ignore[misc]


def test_none_arguments_count_as_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "file")
    options = resolve_options(exporters=None, service_name=None)
    assert (options.exporters, options.service_name) == (("file",), "lmscope-app")
    assert (options.sources["exporters"], options.sources["service_name"]) == ("LMSCOPE_EXPORTERS", "default")


# --- precedence matrix ---------------------------------------------------------------------------------------

# name, argument value, env text, TOML literal, resolved (argument, env, pyproject), default.
# A callable expected value gets the project directory (pyproject paths are relative to their file).
MATRIX: list[tuple[str, object, str, str, tuple[Any, Any, Any], Any]] = [
    ("service_name", "from-arg", "from-env", '"from-toml"', ("from-arg", "from-env", "from-toml"), "lmscope-app"),
    ("exporters", ["file"], "otlp, console", '["console", "file"]',
     (("file",), ("otlp", "console"), ("console", "file")), ("console",)),
    ("file_path", "arg.jsonl", "env.jsonl", '"toml.jsonl"',
     ("arg.jsonl", "env.jsonl", lambda root: str(root / "toml.jsonl")), "lmscope-traces.jsonl"),
    ("otlp_endpoint", "http://arg:4318", "https://env.example", '"http://toml:4318/v1/traces"',
     ("http://arg:4318", "https://env.example", "http://toml:4318/v1/traces"), None),
    ("otlp_protocol", "grpc", "http/protobuf", '"grpc"', ("grpc", "http/protobuf", "grpc"), "http/protobuf"),
    ("capture_content", False, "yes", "false", (False, True, False), True),
    ("scrub", False, "no", "true", (False, False, True), True),
    ("export_all_spans", True, "no", "true", (True, False, True), False),
    ("scrub_patterns", [r"acct-\d+"], '["b+", "c"]', "['d']", ((r"acct-\d+",), ("b+", "c"), ("d",)), ()),
    ("max_content_chars", 100, "200", "300", (100, 200, 300), 16384),
    ("console_stream", "stdout", "stderr", '"stdout"', ("stdout", "stderr", "stdout"), "stderr"),
    ("max_queue_size", 10, "20", "30", (10, 20, 30), 8192),
    ("metrics_exporters", "prometheus", "otlp, console", '["console"]',
     (("prometheus",), ("otlp", "console"), ("console",)), ("none",)),
    ("prometheus_endpoint", "0.0.0.0:9000", "[::1]:9464", '"localhost:0"', ("0.0.0.0:9000", "[::1]:9464", "localhost:0"),
     "127.0.0.1:9464"),
]


@pytest.mark.parametrize(("use_arg", "use_env", "use_toml"), list(itertools.product([True, False], repeat=3)),
                         ids=lambda used: "on" if used else "off")
@pytest.mark.parametrize(("name", "arg", "env", "toml", "resolved", "default"), MATRIX, ids=[row[0] for row in MATRIX])
def test_precedence(monkeypatch: pytest.MonkeyPatch, clean_env: Path, name: str, arg: object, env: str, toml: str,
                    resolved: tuple[Any, Any, Any], default: Any, use_arg: bool, use_env: bool,
                    use_toml: bool) -> None:
    pyproject = write_pyproject(clean_env, f"[tool.lmscope]\n{name} = {toml}\n" if use_toml else "[project]\n")
    if use_env:
        monkeypatch.setenv(f"LMSCOPE_{name.upper()}", env)
    layers = [(use_arg, resolved[0], "argument"), (use_env, resolved[1], f"LMSCOPE_{name.upper()}"),
              (use_toml, resolved[2], table_source(pyproject)), (True, default, "default")]
    expected, source = next((value, source) for used, value, source in layers if used)
    if callable(expected):
        expected = expected(clean_env)

    # Every exporter that reads an option on: an option no chosen exporter reads is not even looked at.
    users = {} if name in ("exporters", "metrics_exporters") else EVERY_EXPORTER
    options = resolve_options(**{**users, **({name: arg} if use_arg else {})})

    assert getattr(options, name) == expected
    assert options.sources[name] == source


# --- environment details -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("console,file", ("console", "file")),
    (" file , otlp ", ("file", "otlp")),
    ("file,console,file", ("file", "console")),
    ("OTLP,Console", ("otlp", "console")),
    ("console,", ("console",)),
    ("none", ("none",)),
])
def test_env_exporters_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch, text: str,
                                                  expected: tuple[str, ...]) -> None:
    monkeypatch.setenv("LMSCOPE_EXPORTERS", text)
    assert resolve_options().exporters == expected


@pytest.mark.parametrize("value", ["file,otlp", ["file", "otlp"], ("file", "otlp", "file")])
def test_argument_exporters_accept_string_list_or_tuple(value: object) -> None:
    assert resolve_options(exporters=value).exporters == ("file", "otlp")


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True),
    ("false", False), ("False", False), ("0", False), ("no", False), (" NO ", False),
])
def test_env_booleans(monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    monkeypatch.setenv("LMSCOPE_CAPTURE_CONTENT", text)
    assert resolve_options().capture_content is expected


def test_empty_env_var_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_SERVICE_NAME", "")
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "  ")
    options = resolve_options()
    assert (options.service_name, options.exporters) == ("lmscope-app", ("console",))
    assert (options.sources["service_name"], options.sources["exporters"]) == ("default", "default")


def test_path_argument_accepts_pathlike_and_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_options(exporters="file", file_path=Path("out") / "t.jsonl").file_path == os.path.join(
        "out", "t.jsonl")
    assert resolve_options(exporters="file", file_path="~/t.jsonl").file_path == str(tmp_path / "home" / "t.jsonl")


# --- standard OTel variables ---------------------------------------------------------------------------------

def test_otel_service_name_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    options = resolve_options()
    assert (options.service_name, options.sources["service_name"]) == ("checkout", "OTEL_SERVICE_NAME")


def test_lmscope_service_name_and_argument_beat_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    monkeypatch.setenv("LMSCOPE_SERVICE_NAME", "ours")
    assert resolve_options().service_name == "ours"
    assert resolve_options(service_name="arg").service_name == "arg"


def test_otel_service_name_beats_pyproject(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    """The deployment's variable describes where the app runs; it beats what the app checked in."""
    write_pyproject(clean_env, '[tool.lmscope]\nservice_name = "from-toml"\n')
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    assert resolve_options().service_name == "checkout"


def test_service_name_from_otel_resource_attributes(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=billing%20api")
    options = resolve_options()
    assert (options.service_name, options.sources["service_name"]) == ("billing api", "default")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")  # OTel: OTEL_SERVICE_NAME beats the attribute
    assert resolve_options().service_name == "checkout"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    write_pyproject(clean_env, '[tool.lmscope]\nservice_name = "from-toml"\n')
    assert resolve_options().service_name == "from-toml"


def test_otlp_protocol_from_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_EXPORTERS", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert resolve_options().otlp_protocol == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    options = resolve_options()
    assert (options.otlp_protocol, options.sources["otlp_protocol"]) == (
        "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    monkeypatch.setenv("LMSCOPE_OTLP_PROTOCOL", "GRPC")
    assert resolve_options().otlp_protocol == "grpc"


def test_metrics_protocol_reads_the_metrics_variables_not_the_traces_one(monkeypatch: pytest.MonkeyPatch,
                                                                         clean_env: Path) -> None:
    write_pyproject(clean_env, '[tool.lmscope]\notlp_protocol = "grpc"\nexporters = "otlp"\n'
                               'metrics_exporters = "otlp"\n')
    options = resolve_options()
    assert (options.otlp_protocol, options.otlp_metrics_protocol) == ("grpc", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    options = resolve_options()
    assert (options.otlp_protocol, options.otlp_metrics_protocol) == ("http/protobuf", "grpc")
    assert options.sources["otlp_metrics_protocol"] == "OTEL_EXPORTER_OTLP_PROTOCOL"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")
    assert resolve_options().otlp_metrics_protocol == "http/protobuf"
    # lmscope's own setting is for both signals and beats the standard variables, as everywhere.
    monkeypatch.setenv("LMSCOPE_OTLP_PROTOCOL", "grpc")
    assert resolve_options().otlp_metrics_protocol == "grpc"
    options = resolve_options(otlp_protocol="http/protobuf")
    assert (options.otlp_protocol, options.otlp_metrics_protocol) == ("http/protobuf", "http/protobuf")
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_options(otlp_metrics_protocol="grpc")


def test_max_queue_size_from_otel_bsp_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "512")
    assert resolve_options(exporters="file").max_queue_size == 512
    monkeypatch.setenv("LMSCOPE_MAX_QUEUE_SIZE", "64")
    assert resolve_options(exporters="file").max_queue_size == 64


def test_otlp_endpoint_is_not_read_from_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """None lets the OTLP exporter apply the spec's endpoint rules itself."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert resolve_options().otlp_endpoint is None


# --- pyproject.toml ------------------------------------------------------------------------------------------

def test_pyproject_found_upward_from_cwd(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    pyproject = write_pyproject(clean_env, '[tool.lmscope]\nexporters = "file"\nfile-path = "out/t.jsonl"\n'
                                           'capture-content = false\nmax_queue_size = 99\n')
    nested = clean_env / "src" / "app"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    options = resolve_options()
    assert (options.exporters, options.file_path, options.capture_content, options.max_queue_size) == (
        ("file",), str(clean_env / "out" / "t.jsonl"), False, 99)
    assert options.sources["file_path"] == table_source(pyproject)


def test_nearest_pyproject_wins_even_without_lmscope_table(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    write_pyproject(clean_env, '[tool.lmscope]\nexporters = "file"\n')
    nested = clean_env / "pkg"
    nested.mkdir()
    write_pyproject(nested, '[project]\nname = "pkg"\n')
    monkeypatch.chdir(nested)
    assert resolve_options().exporters == ("console",)


def test_absolute_pyproject_path_is_kept(clean_env: Path) -> None:
    target = clean_env / "elsewhere" / "t.jsonl"
    write_pyproject(clean_env, f'[tool.lmscope]\nexporters = "file"\nfile_path = "{target.as_posix()}"\n')
    assert resolve_options().file_path == target.as_posix()


def test_pyproject_skipped_without_a_toml_reader(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    """Python 3.10 without tomli: the file is skipped, not half-read."""
    write_pyproject(clean_env, '[tool.lmscope]\nexporters = "file"\n')
    monkeypatch.setattr(options_module, "_toml", None)
    assert resolve_options().exporters == ("console",)


# --- errors: one line, option, source, value, what is allowed ------------------------------------------------

ERRORS: list[tuple[dict[str, object], dict[str, str], str | None, str]] = [
    # kwargs, env, pyproject body, message ({source} = pyproject table source, {EXPORTERS_ALLOWED} = the names)
    ({"exporters": "jagger"}, {}, None,
     "lmscope: exporters: unknown exporter 'jagger' (from argument); allowed: {EXPORTERS_ALLOWED}"),
    ({}, {"LMSCOPE_EXPORTERS": "console,jagger"}, None,
     "lmscope: exporters: unknown exporter 'jagger' (from LMSCOPE_EXPORTERS); allowed: {EXPORTERS_ALLOWED}"),
    ({"exporters": 5}, {}, None,
     "lmscope: exporters: not a list of exporter names or a comma-separated string: 5 (from argument); "
     "allowed: {EXPORTERS_ALLOWED}"),
    ({"exporters": ["console", 3]}, {}, None,
     "lmscope: exporters: not an exporter name: 3 (from argument); allowed: {EXPORTERS_ALLOWED}"),
    ({"exporters": ""}, {}, None,
     "lmscope: exporters: no exporter named in '' (from argument); allowed: {EXPORTERS_ALLOWED}"),
    ({}, {"LMSCOPE_EXPORTERS": " , "}, None,
     "lmscope: exporters: no exporter named in ' , ' (from LMSCOPE_EXPORTERS); allowed: {EXPORTERS_ALLOWED}"),
    ({}, {"LMSCOPE_EXPORTERS": "none,console"}, None,
     "lmscope: exporters: 'none' cannot be combined with other exporters: 'none,console' (from LMSCOPE_EXPORTERS); "
     "allowed: {EXPORTERS_ALLOWED}"),
    ({}, {}, "exporters = []",
     "lmscope: exporters: no exporter named in [] (from {source}); allowed: {EXPORTERS_ALLOWED}"),
    ({"capture_content": "maybe"}, {}, None,
     "lmscope: capture_content: not a boolean: 'maybe' (from argument); allowed: " + CAPTURE_ALLOWED),
    ({}, {"LMSCOPE_CAPTURE_CONTENT": "maybe"}, None,
     "lmscope: capture_content: not a boolean: 'maybe' (from LMSCOPE_CAPTURE_CONTENT); "
     "allowed: " + CAPTURE_ALLOWED),
    ({}, {}, "capture_content = 1",
     "lmscope: capture_content: not a boolean: 1 (from {source}); allowed: " + CAPTURE_ALLOWED),
    ({"max_queue_size": 0}, {}, None,
     "lmscope: max_queue_size: not a positive integer: 0 (from argument); allowed: an integer > 0"),
    ({}, {"LMSCOPE_MAX_QUEUE_SIZE": "-5"}, None,
     "lmscope: max_queue_size: not a positive integer: '-5' (from LMSCOPE_MAX_QUEUE_SIZE); allowed: an integer > 0"),
    ({"max_queue_size": True}, {}, None,
     "lmscope: max_queue_size: not an integer: True (from argument); allowed: an integer > 0"),
    ({"max_queue_size": 2.5}, {}, None,
     "lmscope: max_queue_size: not an integer: 2.5 (from argument); allowed: an integer > 0"),
    ({"otlp_endpoint": "localhost:4318"}, {}, None,
     "lmscope: otlp_endpoint: malformed endpoint 'localhost:4318' (from argument); "
     "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318"),
    ({}, {"LMSCOPE_OTLP_ENDPOINT": "ftp://collector"}, None,
     "lmscope: otlp_endpoint: malformed endpoint 'ftp://collector' (from LMSCOPE_OTLP_ENDPOINT); "
     "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318"),
    ({"otlp_endpoint": "http://"}, {}, None,
     "lmscope: otlp_endpoint: malformed endpoint 'http://' (from argument); "
     "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318"),
    ({"otlp_endpoint": "http://collector:port"}, {}, None,
     "lmscope: otlp_endpoint: malformed endpoint 'http://collector:port' (from argument); "
     "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318"),
    ({"otlp_endpoint": 4318}, {}, None,
     "lmscope: otlp_endpoint: not a string: 4318 (from argument); "
     "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318"),
    ({}, {"LMSCOPE_OTLP_PROTOCOL": "http/xml"}, None,
     "lmscope: otlp_protocol: unknown protocol 'http/xml' (from LMSCOPE_OTLP_PROTOCOL); "
     "allowed: http/protobuf, grpc, http/json"),
    ({}, {}, 'otlp_protocol = "json"',
     "lmscope: otlp_protocol: unknown protocol 'json' (from {source}); allowed: http/protobuf, grpc, http/json"),
    ({"metrics_exporters": ["prometheus", "file"]}, {}, None,
     "lmscope: metrics_exporters: unknown exporter 'file' (from argument); allowed: otlp, prometheus, console, none"),
    ({}, {"LMSCOPE_METRICS_EXPORTERS": "none,prometheus"}, None,
     "lmscope: metrics_exporters: 'none' cannot be combined with other exporters: 'none,prometheus' "
     "(from LMSCOPE_METRICS_EXPORTERS); allowed: otlp, prometheus, console, none"),
    ({"prometheus_endpoint": "9464"}, {}, None,
     "lmscope: prometheus_endpoint: malformed host:port '9464' (from argument); "
     "allowed: host:port, e.g. 127.0.0.1:9464 (port 0 picks a free port)"),
    ({}, {"LMSCOPE_PROMETHEUS_ENDPOINT": "http://localhost:9464"}, None,
     "lmscope: prometheus_endpoint: malformed host:port 'http://localhost:9464' (from LMSCOPE_PROMETHEUS_ENDPOINT); "
     "allowed: host:port, e.g. 127.0.0.1:9464 (port 0 picks a free port)"),
    ({"prometheus_endpoint": "localhost:99999"}, {}, None,
     "lmscope: prometheus_endpoint: malformed host:port 'localhost:99999' (from argument); "
     "allowed: host:port, e.g. 127.0.0.1:9464 (port 0 picks a free port)"),
    ({}, {}, 'prometheus_endpoint = ":9464"',
     "lmscope: prometheus_endpoint: malformed host:port ':9464' (from {source}); "
     "allowed: host:port, e.g. 127.0.0.1:9464 (port 0 picks a free port)"),
    ({"console_stream": "stdlog"}, {}, None,
     "lmscope: console_stream: unknown stream 'stdlog' (from argument); allowed: stderr, stdout"),
    ({"service_name": 5}, {}, None,
     "lmscope: service_name: not a string: 5 (from argument); allowed: a non-empty string"),
    ({}, {}, 'service_name = "  "',
     "lmscope: service_name: empty value '  ' (from {source}); allowed: a non-empty string"),
    ({"file_path": ""}, {}, None,
     "lmscope: file_path: empty value '' (from argument); allowed: a non-empty file path"),
    ({"exporter": "console"}, {}, None,
     f"lmscope: exporter: unknown option (from argument); allowed: {ALLOWED_OPTIONS}"),
    ({}, {}, 'capture-contents = true',
     f"lmscope: capture_contents: unknown option (from {{source}}); allowed: {ALLOWED_OPTIONS}"),
]


@pytest.mark.parametrize(("kwargs", "env", "toml", "message"), ERRORS, ids=[row[3][9:60] for row in ERRORS])
def test_bad_values_raise_one_line(monkeypatch: pytest.MonkeyPatch, clean_env: Path, kwargs: dict[str, object],
                                   env: dict[str, str], toml: str | None, message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pyproject = write_pyproject(clean_env, f"[tool.lmscope]\n{toml}\n" if toml else "[project]\n")
    # The exporters that read each option are on (none is read otherwise), unless the row is about them.
    users = {} if message.startswith(("lmscope: exporters:", "lmscope: metrics_exporters:")) else EVERY_EXPORTER
    with pytest.raises(ConfigError) as caught:
        resolve_options(**{**users, **kwargs})
    assert str(caught.value) == message.replace("{source}", table_source(pyproject)).replace(
        "{EXPORTERS_ALLOWED}", EXPORTERS_ALLOWED)
    assert "\n" not in str(caught.value)
    # The traceback ends at resolve_options: no internal parsing exception chained to it.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_endpoint_credentials_are_masked_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_OTLP_ENDPOINT", "https://user:s3cret@:99/v1/traces?api_key=s3cret")
    with pytest.raises(ConfigError) as caught:
        resolve_options(exporters="otlp")
    assert str(caught.value) == (
        "lmscope: otlp_endpoint: malformed endpoint 'https://***@:99/v1/traces?***' (from LMSCOPE_OTLP_ENDPOINT); "
        "allowed: an http:// or https:// URL with a host, e.g. http://localhost:4318")


def test_lmscope_entry_that_is_not_a_table(clean_env: Path) -> None:
    pyproject = write_pyproject(clean_env, '[tool]\nlmscope = "console"\n')
    with pytest.raises(ConfigError) as caught:
        resolve_options()
    assert str(caught.value) == f"lmscope: [tool.lmscope] in {pyproject} must be a table, got 'console'"


def test_long_values_are_cut_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_options(service_name=["x" * 200])
    assert str(caught.value) == (f"lmscope: service_name: not a string: ['{'x' * 75}... (from argument); "
                                 "allowed: a non-empty string")


# --- only what the chosen exporters read ---------------------------------------------------------------------

# option -> a bad [tool.lmscope] value, and the (span exporters, metrics exporters) that read it
READERS: dict[str, tuple[str, set[tuple[str, str]]]] = {
    "file_path": ("file_path = 5", {("file", "none")}),
    "otlp_endpoint": ('otlp_endpoint = "ftp://x"', {("otlp", "none"), ("none", "otlp")}),
    "otlp_protocol": ('otlp_protocol = "spdy"', {("otlp", "none"), ("none", "otlp")}),  # spans, and metrics' view
    "console_stream": ('console_stream = "stdlog"', {("console", "none"), ("none", "console")}),
    "max_queue_size": ("max_queue_size = 0", {(name, "none") for name in ("file", "otlp", "jaeger", "langfuse",
                                                                          "mlflow", "phoenix")}),
    "prometheus_endpoint": ('prometheus_endpoint = "9464"', {("none", "prometheus")}),
    "phoenix_endpoint": ('phoenix_endpoint = "localhost:6006"', {("phoenix", "none")}),
}
CHOICES = [(span, "none") for span in ("console", "file", "otlp", "jaeger", "langfuse", "mlflow", "phoenix",
                                       "none")] + [
    ("none", metrics) for metrics in ("otlp", "prometheus", "console")]


@pytest.mark.parametrize(("span", "metrics"), CHOICES, ids=[f"{s}+{m}" for s, m in CHOICES])
@pytest.mark.parametrize("name", list(READERS))
def test_an_option_is_read_only_when_a_chosen_exporter_uses_it(clean_env: Path, caplog: pytest.LogCaptureFixture,
                                                                name: str, span: str, metrics: str) -> None:
    bad, readers = READERS[name]
    write_pyproject(clean_env, f"[tool.lmscope]\n{bad}\n")
    if (span, metrics) in readers:
        with pytest.raises(ConfigError, match=f"^lmscope: {name}: "):
            resolve_options(exporters=span, metrics_exporters=metrics)
        return
    with caplog.at_level(logging.DEBUG, logger="lmscope"):
        options = resolve_options(exporters=span, metrics_exporters=metrics)
    field = "otlp_metrics_protocol" if name == "otlp_protocol" and metrics == "otlp" else name
    assert (getattr(options, field), options.sources[field]) == (getattr(Options(), field), "default")
    assert caplog.records == []  # not parsed at all: nothing to warn about either


def test_console_run_ignores_variables_meant_for_other_exporters(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11: OTEL_BSP_MAX_QUEUE_SIZE=abc or a protocol lmscope cannot speak broke a console-only run."""
    for name, value in (("OTEL_BSP_MAX_QUEUE_SIZE", "abc"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/thrift"),
                        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "spdy"), ("LMSCOPE_OTLP_ENDPOINT", "collector:4318"),
                        ("LMSCOPE_PROMETHEUS_ENDPOINT", "9464"), ("LMSCOPE_FILE_PATH", "x.jsonl")):
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.DEBUG, logger="lmscope"):
        options = resolve_options()
    assert options == Options()
    assert set(options.sources.values()) == {"default"}
    assert caplog.records == []


def test_instrumentation_reports_the_file_path_only_for_the_file_exporter(monkeypatch: pytest.MonkeyPatch,
                                                                          clean_env: Path) -> None:
    import lmscope

    monkeypatch.setenv("LMSCOPE_FILE_PATH", str(clean_env / "t.jsonl"))
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "abc")
    handle = lmscope.instrument(exporters="none")
    try:
        assert (handle.file_path, handle.exporters) == (None, ("none",))
    finally:
        handle.uninstrument()
    handle = lmscope.instrument(exporters="file")
    try:
        assert handle.file_path == str(clean_env / "t.jsonl")
    finally:
        handle.uninstrument()


# --- standard and other tools' variables: a warning; lmscope's own settings: an error ---------------------

def test_bad_standard_variable_warns_once_and_uses_the_next_layer(monkeypatch: pytest.MonkeyPatch, clean_env: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "ten")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        first = resolve_options(exporters="file")
        second = resolve_options(exporters="otlp")
    assert (first.max_queue_size, first.sources["max_queue_size"], second.max_queue_size) == (8192, "default", 8192)
    assert [record.getMessage() for record in caplog.records] == [
        "lmscope: ignoring OTEL_BSP_MAX_QUEUE_SIZE='ten': not an integer: 'ten' (allowed: an integer > 0); "
        "lmscope uses max_queue_size=8192 (default) instead"]
    assert [record.name for record in caplog.records] == ["lmscope"]
    caplog.clear()

    pyproject = write_pyproject(clean_env, "[tool.lmscope]\nmax_queue_size = 99\n")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "-1")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options(exporters="file")
    assert (options.max_queue_size, options.sources["max_queue_size"]) == (99, table_source(pyproject))
    assert [record.getMessage() for record in caplog.records] == [
        "lmscope: ignoring OTEL_BSP_MAX_QUEUE_SIZE='-1': not a positive integer: '-1' (allowed: an integer > 0); "
        f"lmscope uses max_queue_size=99 (from {table_source(pyproject)}) instead"]


def test_bad_traces_protocol_variable_falls_back_to_the_generic_one(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/thrift")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        options = resolve_options(exporters="otlp")
    assert (options.otlp_protocol, options.sources["otlp_protocol"]) == ("grpc", "OTEL_EXPORTER_OTLP_PROTOCOL")
    assert [record.getMessage() for record in caplog.records] == [
        "lmscope: ignoring OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/thrift': unknown protocol 'http/thrift' "
        "(allowed: http/protobuf, grpc, http/json); lmscope uses otlp_protocol='grpc' "
        "(from OTEL_EXPORTER_OTLP_PROTOCOL) instead"]


def test_lmscope_variable_beats_a_bad_standard_one_and_is_checked_strictly(monkeypatch: pytest.MonkeyPatch,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "ten")
    monkeypatch.setenv("LMSCOPE_MAX_QUEUE_SIZE", "64")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert resolve_options(exporters="file").max_queue_size == 64
    assert caplog.records == []  # the standard variable was never needed
    monkeypatch.setenv("LMSCOPE_MAX_QUEUE_SIZE", "sixty")
    with pytest.raises(ConfigError, match=r"^lmscope: max_queue_size: not an integer: 'sixty' "
                                          r"\(from LMSCOPE_MAX_QUEUE_SIZE\)"):
        resolve_options(exporters="file")


def test_http_json_is_a_protocol() -> None:
    assert resolve_options(exporters="otlp", otlp_protocol="HTTP/JSON").otlp_protocol == "http/json"


# --- a pyproject.toml lmscope cannot read is skipped with one warning --------------------------------------

@pytest.mark.parametrize(("body", "problem"), [
    (b"[tool.lmscope\n", "TOMLDecodeError: Expected ']' at the end of a table declaration (at line 1, column 14)"),
    (b'[tool.lmscope]\nservice_name = "caf\xe9"\n',
     "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 34: invalid continuation byte"),
])
def test_unreadable_pyproject_warns_once_and_is_skipped(monkeypatch: pytest.MonkeyPatch, clean_env: Path,
                                                        caplog: pytest.LogCaptureFixture, body: bytes,
                                                        problem: str) -> None:
    """Typically another project's file in a parent directory: it must not stop instrument()."""
    import lmscope

    project = clean_env / "parent"
    (project / "app").mkdir(parents=True)
    pyproject = project / "pyproject.toml"
    pyproject.write_bytes(body)
    monkeypatch.chdir(project / "app")
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert resolve_options() == Options()
        handle = lmscope.instrument(exporters="none")
        handle.uninstrument()
    assert [record.getMessage() for record in caplog.records] == [
        f"lmscope: ignoring {pyproject}: cannot read it ({problem}); lmscope runs without [tool.lmscope]"]


def test_pyproject_without_read_permission_is_skipped(monkeypatch: pytest.MonkeyPatch, clean_env: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    pyproject = write_pyproject(clean_env, '[tool.lmscope]\nservice_name = "x"\n')
    if os.geteuid() == 0:  # root reads any file: make the open fail as it does for anyone else
        real_open = Path.open

        def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == pyproject:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
    else:
        pyproject.chmod(0)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        assert resolve_options().service_name == "lmscope-app"
    assert [record.getMessage() for record in caplog.records] == [
        f"lmscope: ignoring {pyproject}: cannot read it (PermissionError: [Errno 13] Permission denied: "
        f"'{pyproject}'); lmscope runs without [tool.lmscope]"]
