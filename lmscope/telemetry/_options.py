"""Options: one declarative table and one resolver.

Each option is resolved from the first layer that has it: keyword argument > environment (`LMSCOPE_<NAME>`,
then the standard `OTEL_*` aliases of that option) > `[tool.lmscope]` in the app's pyproject.toml > default.
Standard OTel variables rank with the environment, above pyproject.toml, because a deployment sets them to
describe where it runs (collector protocol, service name) and that must beat what the app checked in.

An option an exporter reads (file_path, otlp_*, console_stream, max_queue_size, prometheus_endpoint, the backend
presets' jaeger_*, langfuse_host, mlflow_*, phoenix_endpoint) is read only when a chosen span or metrics exporter
uses it (its `used_by` row); otherwise it keeps its default, its source is `default`, and no layer's value is even
parsed: a variable set for another tool (MLFLOW_TRACKING_URI=databricks, OTEL_BSP_MAX_QUEUE_SIZE=abc) cannot break a
run that does not use it.

lmscope's own settings (arguments, LMSCOPE_* variables, `[tool.lmscope]`) are checked strictly: a bad value raises
`ConfigError` with one line: the option, where the value came from, the value, what is allowed. A standard variable
(OTEL_*) or another tool's (LANGFUSE_*, MLFLOW_*, PHOENIX_*) that lmscope cannot honour is not lmscope's to reject:
it is logged once as a warning naming the variable, its value and what lmscope uses instead (the next layer that has
a good value, or the default). Values that may carry credentials (endpoint userinfo and query) are masked.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from ._exporters.endpoints import LANGFUSE_DEFAULT_HOST, MLFLOW_DEFAULT_TRACKING_URI, PHOENIX_DEFAULT_ENDPOINT
from ._url_masking import mask_url

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.10 only
    try:
        import tomli as _toml
    except ImportError:  # no TOML reader: pyproject.toml is skipped rather than half-read
        _toml = None

EXPORTERS: Final = ("console", "file", "otlp", "jaeger", "langfuse", "mlflow", "phoenix")
"""Exporter names that send spans somewhere; a new backend preset adds its name here."""
METRICS_EXPORTERS: Final = ("otlp", "prometheus", "console")
"""Exporter names that send metrics somewhere (`metrics_exporters`)."""
NO_EXPORT: Final = "none"
"""The exporter name that turns export off; it cannot be combined with the others."""
OTLP_PROTOCOLS: Final = ("http/protobuf", "grpc", "http/json")
"""What the span exporters speak; metrics go as http/protobuf when http/json is asked (see _metrics_setup.py)."""
BATCHING_EXPORTERS: Final = tuple(name for name in EXPORTERS if name != "console")
"""Span exporters behind a batch processor (the console tree prints whole traces itself): they read max_queue_size."""
CONSOLE_STREAMS: Final = ("stderr", "stdout")
DEFAULT_SERVICE_NAME: Final = "lmscope-app"
DEFAULT_PROMETHEUS_ENDPOINT: Final = "127.0.0.1:9464"
"""Loopback, not 0.0.0.0: a scrape endpoint is reachable from outside the host only when asked for."""
DEFAULT_MAX_QUEUE_SIZE: Final = 8192
"""Spans queued per exporter. Four times the SDK's 2,048: a tight DSPy loop (cache hits) makes ~7,000 spans/s
and a busy machine can keep the export thread off the CPU for a second; about 5 KB per span with content."""

DEFAULT_MAX_CONTENT_CHARS: Final = 16384
"""Longest captured attribute value (`input.value`, document text, ...); longer ones are cut with a marker."""
CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_MODES: Final = {"no_content": False, "event_only": False, "span_only": True, "span_and_event": True}
"""The values opentelemetry-util-genai gives CAPTURE_MESSAGE_CONTENT besides true/false; lmscope records content on
spans only, so EVENT_ONLY means none on spans."""

CAPTURE_ALLOWED: Final = "true, false, 1, 0, yes, no, on, off, or the OTel GenAI modes " + ", ".join(_CAPTURE_MODES)

ARGUMENT: Final = "argument"
"""Source label of a keyword argument."""
DEFAULT: Final = "default"
"""Source label of a value nobody set."""
PYPROJECT_TABLE: Final = "[tool.lmscope]"

logger = logging.getLogger("lmscope")
_warned: set[tuple[str, str]] = set()
"""(variable, value) and (file, problem) pairs already warned about: one line per process, however often
instrument() runs."""

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
BOOLEAN_ALLOWED: Final = "true, false, 1, 0, yes, no, on, off"


class ConfigError(ValueError):
    """A bad lmscope option; the message is one line naming option, source, value and what is allowed."""

    @classmethod
    def for_option(cls, name: str, problem: str, source: str, allowed: str) -> ConfigError:
        return cls(f"lmscope: {name}: {problem} (from {source}); allowed: {allowed}")


@dataclass(frozen=True)
class Options:
    """Resolved lmscope options; `sources` says where each value came from (argument, env var, pyproject)."""

    service_name: str = DEFAULT_SERVICE_NAME
    exporters: tuple[str, ...] = ("console",)
    file_path: str = "lmscope-traces.jsonl"
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["http/protobuf", "grpc", "http/json"] = "http/protobuf"
    capture_content: bool = True
    scrub: bool = True
    scrub_patterns: tuple[str, ...] = ()
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    console_stream: Literal["stderr", "stdout"] = "stderr"
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    metrics_exporters: tuple[str, ...] = (NO_EXPORT,)
    prometheus_endpoint: str = DEFAULT_PROMETHEUS_ENDPOINT
    jaeger_endpoint: str | None = None
    jaeger_protocol: Literal["http/protobuf", "grpc", "http/json"] = "http/protobuf"
    langfuse_host: str = LANGFUSE_DEFAULT_HOST
    mlflow_tracking_uri: str = MLFLOW_DEFAULT_TRACKING_URI
    mlflow_experiment_id: str | None = None
    mlflow_experiment_name: str | None = None
    phoenix_endpoint: str = PHOENIX_DEFAULT_ENDPOINT
    export_all_spans: bool = False
    """lmscope's exporters also send the app's spans of a provider lmscope shares with it (default: only lmscope's)."""
    otlp_metrics_protocol: Literal["http/protobuf", "grpc", "http/json"] = "http/protobuf"
    """`otlp_protocol` as the metrics exporter reads it (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, not ..._TRACES_...)."""
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def given(self, name: str) -> bool:
        """True when someone set the option (argument, env var, pyproject), False for a default."""
        return self.sources.get(name, DEFAULT) != DEFAULT


class _Invalid(Exception):
    """A parser's complaint about a raw value; the resolver adds option name, source and allowed values."""


def _show(value: object) -> str:
    """A bounded, single-line repr for error messages."""
    text = repr(value).replace("\n", "\\n")
    return text if len(text) <= 80 else text[:77] + "..."


# Parsers: a raw value from any layer (native from arguments and TOML, str from env) -> typed value.

def _string(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"not a string: {_show(raw)}")
    if not raw.strip():
        raise _Invalid(f"empty value {raw!r}")
    return raw.strip()


def _path(raw: object) -> str:
    value = os.fspath(raw) if isinstance(raw, os.PathLike) else raw
    return os.path.expanduser(_string(value))


def _exporter_list(allowed: tuple[str, ...]) -> Callable[[object], tuple[str, ...]]:
    """A parser for a list of exporter names out of `allowed`, or 'none' alone."""

    def parse(raw: object) -> tuple[str, ...]:
        if isinstance(raw, str):
            items: Sequence[object] = raw.split(",")
        elif isinstance(raw, (list, tuple)):
            items = raw
        else:
            raise _Invalid(f"not a list of exporter names or a comma-separated string: {_show(raw)}")
        names: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise _Invalid(f"not an exporter name: {_show(item)}")
            name = item.strip().lower()
            if name and name not in (*allowed, NO_EXPORT):
                raise _Invalid(f"unknown exporter {item.strip()!r}")
            if name and name not in names:
                names.append(name)
        if not names:
            raise _Invalid(f"no exporter named in {_show(raw)}")
        if NO_EXPORT in names and len(names) > 1:
            raise _Invalid(f"'none' cannot be combined with other exporters: {_show(raw)}")
        return tuple(names)

    return parse


def _endpoint(raw: object) -> str:
    value = _string(raw)
    problem = _Invalid(f"malformed endpoint {mask_url(value)!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise problem from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise problem
    return value


def split_host_port(text: str) -> tuple[str, int]:
    """`127.0.0.1:9464` -> ("127.0.0.1", 9464); `[::1]:9464` -> ("::1", 9464). Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535 or any(c in host for c in " /[]@?#"):
        raise ValueError(text)
    return host, int(port)


def _host_port(raw: object) -> str:
    value = _string(raw)
    try:
        split_host_port(value)
    except ValueError:
        raise _Invalid(f"malformed host:port {value!r}") from None
    return value


def _choice(noun: str, choices: tuple[str, ...]) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        value = _string(raw).lower()
        if value not in choices:
            raise _Invalid(f"unknown {noun} {raw!r}")
        return value

    return parse


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _Invalid(f"not a boolean: {_show(raw)}")


def _capture_switch(raw: object) -> bool:
    if isinstance(raw, str) and raw.strip().lower() in _CAPTURE_MODES:
        return _CAPTURE_MODES[raw.strip().lower()]
    return _boolean(raw)


def _patterns(raw: object) -> tuple[str, ...]:
    """Regexes: a list (argument, pyproject), or from the environment a JSON array or one regex."""
    items: object = raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            import json

            try:
                items = json.loads(text)
            except ValueError:
                raise _Invalid(f"not a JSON array of regexes: {_show(raw)}") from None
        else:
            items = [text]
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise _Invalid(f"not a list of regex strings: {_show(raw)}")
    for item in items:
        try:
            re.compile(item)
        except re.error as exc:
            raise _Invalid(f"regex {_show(item)} does not compile: {exc}") from None
    return tuple(items)


def parse_hide_switch(variable: str, environ: Mapping[str, str]) -> bool:
    """A switch another tool defines to hide content (OPENINFERENCE_HIDE_*): unset or empty is False. A value that
    is not a boolean is True, with a warning (once): whoever set a privacy switch meant to hide something, and
    another tool's variable is not lmscope's to reject."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return False
    try:
        return _boolean(raw)
    except _Invalid as exc:
        warn_ignored_variable(variable, raw, f"{exc} (allowed: {BOOLEAN_ALLOWED})", "true (content hidden)")
        return True


def warn_ignored_variable(variable: str, raw: str, problem: str, instead: str) -> None:
    """Log once that standard or foreign variable `variable` is ignored: its (masked) value, why, what is used."""
    if (variable, raw) in _warned:
        return
    _warned.add((variable, raw))
    logger.warning("lmscope: ignoring %s=%s: %s; lmscope uses %s instead", variable, _show(_masked(raw)), problem,
                   instead)


def _masked(value: object) -> object:
    return mask_url(value) if isinstance(value, str) and "://" in value else value


def _positive_int(raw: object) -> int:
    value: object = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip())
        except ValueError:
            raise _Invalid(f"not an integer: {_show(raw)}") from None
    # bool is an int subclass, but `max_queue_size=True` is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"not an integer: {_show(raw)}")
    if value <= 0:
        raise _Invalid(f"not a positive integer: {_show(raw)}")
    return value


def env_service_name() -> str | None:
    """The service name the standard variables give (OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES)."""
    # The SDK's own detector, so parsing and precedence match what Resource.create does.
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector

    name = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    return name if isinstance(name, str) and name else None


@dataclass(frozen=True)
class UsedBy:
    """The span exporters (`exporters`) and metrics exporters (`metrics_exporters`) that read an option."""

    spans: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()

    def by_any(self, span_exporters: Sequence[str], metrics_exporters: Sequence[str]) -> bool:
        return any(name in self.spans for name in span_exporters) or any(
            name in self.metrics for name in metrics_exporters)


_OTLP = UsedBy(spans=("otlp",), metrics=("otlp",))
_CONSOLE = UsedBy(spans=("console",), metrics=("console",))
_JAEGER = UsedBy(spans=("jaeger",))
_MLFLOW = UsedBy(spans=("mlflow",))


@dataclass(frozen=True)
class _Option:
    name: str
    parse: Callable[[object], object]
    allowed: str
    default: Callable[[], object]
    env_aliases: tuple[str, ...] = ()
    """Standard OTel variables read after LMSCOPE_<NAME>."""
    key: str = ""
    """The user-facing option this row reads (argument, LMSCOPE_<KEY>, pyproject) when it is not `name`: a
    per-signal view of one option, with that signal's OTel variables (otlp_protocol for metrics)."""
    config_relative: bool = False
    """A relative path from pyproject.toml is relative to that file, as ruff and pytest read theirs."""
    used_by: UsedBy | None = None
    """Read only when one of these exporters is chosen (None: always read): a stray MLFLOW_TRACKING_URI=databricks
    or OTEL_BSP_MAX_QUEUE_SIZE=abc must not break a console run."""
    alias_parse: Callable[[object], object] | None = None
    """The parser of the `env_aliases` when they speak a narrower language than lmscope's own settings
    (OTEL_TRACES_EXPORTER=jaeger names the OTel SDK's old Jaeger exporter, not lmscope's preset)."""
    alias_allowed: str = ""
    """What the `env_aliases` accept, for the warning about a value lmscope cannot honour (default: `allowed`)."""
    alias_unreadable: Callable[[], object] | None = None
    """What a standard variable set to a value lmscope cannot read stands for; None: it is skipped and the next layer
    decides. A privacy switch fails closed (`capture_content`)."""

    @property
    def user_key(self) -> str:
        return self.key or self.name

    @property
    def env(self) -> tuple[str, ...]:
        return (f"LMSCOPE_{self.user_key.upper()}", *self.env_aliases)


OTEL_SPAN_EXPORTERS: Final = ("otlp", "console")
"""The OTEL_TRACES_EXPORTER values lmscope honours (with `none`), each as the lmscope exporter of that name: `otlp`
is lmscope's OTLP exporter, `console` its console tree. Others (zipkin, the old jaeger exporter, a plugin's
name) name SDK exporters lmscope does not run: a warning, and the next layer decides."""

_TABLE: Final[tuple[_Option, ...]] = (
    _Option("service_name", _string, "a non-empty string",
            lambda: env_service_name() or DEFAULT_SERVICE_NAME, env_aliases=("OTEL_SERVICE_NAME",)),
    _Option("exporters", _exporter_list(EXPORTERS), ", ".join((*EXPORTERS, NO_EXPORT)), lambda: ("console",),
            env_aliases=("OTEL_TRACES_EXPORTER",), alias_parse=_exporter_list(OTEL_SPAN_EXPORTERS),
            alias_allowed=", ".join((*OTEL_SPAN_EXPORTERS, NO_EXPORT))),
    _Option("file_path", _path, "a non-empty file path", lambda: "lmscope-traces.jsonl", config_relative=True,
            used_by=UsedBy(spans=("file",))),
    _Option("otlp_endpoint", _endpoint, "an http:// or https:// URL with a host, e.g. http://localhost:4318",
            lambda: None, used_by=_OTLP),
    _Option("otlp_protocol", _choice("protocol", OTLP_PROTOCOLS), ", ".join(OTLP_PROTOCOLS),
            lambda: "http/protobuf",
            env_aliases=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            used_by=UsedBy(spans=("otlp",))),
    # OTel's own GenAI instrumentations capture only for `true` (or a mode that says so): any other value hides.
    _Option("capture_content", _capture_switch, CAPTURE_ALLOWED, lambda: True,
            env_aliases=(CAPTURE_MESSAGE_CONTENT,), alias_unreadable=lambda: False),
    _Option("scrub", _boolean, BOOLEAN_ALLOWED, lambda: True),
    _Option("scrub_patterns", _patterns, "a list of regexes that compile (from the environment: a JSON array, "
            "or one regex)", lambda: ()),
    _Option("max_content_chars", _positive_int, "an integer > 0", lambda: DEFAULT_MAX_CONTENT_CHARS),
    _Option("console_stream", _choice("stream", CONSOLE_STREAMS), ", ".join(CONSOLE_STREAMS), lambda: "stderr",
            used_by=_CONSOLE),
    _Option("max_queue_size", _positive_int, "an integer > 0", lambda: DEFAULT_MAX_QUEUE_SIZE,
            env_aliases=("OTEL_BSP_MAX_QUEUE_SIZE",), used_by=UsedBy(spans=BATCHING_EXPORTERS)),
    _Option("metrics_exporters", _exporter_list(METRICS_EXPORTERS), ", ".join((*METRICS_EXPORTERS, NO_EXPORT)),
            lambda: (NO_EXPORT,), env_aliases=("OTEL_METRICS_EXPORTER",)),
    _Option("prometheus_endpoint", _host_port, "host:port, e.g. 127.0.0.1:9464 (port 0 picks a free port)",
            lambda: DEFAULT_PROMETHEUS_ENDPOINT, used_by=UsedBy(metrics=("prometheus",))),
    _Option("otlp_metrics_protocol", _choice("protocol", OTLP_PROTOCOLS), ", ".join(OTLP_PROTOCOLS),
            lambda: "http/protobuf", key="otlp_protocol",
            env_aliases=("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            used_by=UsedBy(metrics=("otlp",))),
    # Backend presets. Their standard variables rank as env aliases, like the OTEL_* ones above.
    _Option("jaeger_endpoint", _endpoint, "an http:// or https:// URL with a host, e.g. http://localhost:4318",
            lambda: None, env_aliases=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
            used_by=_JAEGER),
    _Option("jaeger_protocol", _choice("protocol", OTLP_PROTOCOLS), ", ".join(OTLP_PROTOCOLS),
            lambda: "http/protobuf",
            env_aliases=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"), used_by=_JAEGER),
    # LANGFUSE_BASE_URL before LANGFUSE_HOST: the order the Langfuse SDK reads them.
    _Option("langfuse_host", _endpoint, "the http:// or https:// base URL of a Langfuse server",
            lambda: LANGFUSE_DEFAULT_HOST, env_aliases=("LANGFUSE_BASE_URL", "LANGFUSE_HOST"),
            used_by=UsedBy(spans=("langfuse",))),
    _Option("mlflow_tracking_uri", _endpoint,
            "the http:// or https:// URL of an `mlflow server` (file and database stores cannot receive OTLP)",
            lambda: MLFLOW_DEFAULT_TRACKING_URI, env_aliases=("MLFLOW_TRACKING_URI",), used_by=_MLFLOW),
    _Option("mlflow_experiment_id", _string, "a non-empty experiment id", lambda: None,
            env_aliases=("MLFLOW_EXPERIMENT_ID",), used_by=_MLFLOW),
    _Option("mlflow_experiment_name", _string, "a non-empty experiment name", lambda: None,
            env_aliases=("MLFLOW_EXPERIMENT_NAME",), used_by=_MLFLOW),
    # PHOENIX_COLLECTOR_ENDPOINT is what Phoenix's own client reads; its fallback OTEL_EXPORTER_OTLP_ENDPOINT is not
    # an alias here: next to `otlp` or `jaeger` it names their collector, and Phoenix's copies would go there too.
    _Option("phoenix_endpoint", _endpoint,
            "the http:// or https:// base URL of a Phoenix server, e.g. http://localhost:6006 (or its /v1/traces URL)",
            lambda: PHOENIX_DEFAULT_ENDPOINT, env_aliases=("PHOENIX_COLLECTOR_ENDPOINT",),
            used_by=UsedBy(spans=("phoenix",))),
    # What lmscope's exporters send of a provider shared with the app (`_span_switch.ProcessorGroup`).
    _Option("export_all_spans", _boolean, BOOLEAN_ALLOWED, lambda: False),
)
OPTION_NAMES: Final[tuple[str, ...]] = tuple(option.name for option in _TABLE if not option.key)
"""What a user can set; rows with a `key` are views of another option, not options of their own."""


def _reject_unknown(names: Sequence[str], source: str) -> None:
    for name in names:
        if name not in OPTION_NAMES:
            raise ConfigError.for_option(name, "unknown option", source, ", ".join(OPTION_NAMES))


def check_option(name: str, raw: object, source: str) -> None:
    """Raise `ConfigError` if `raw` is no good value of option `name`, naming `source` (a command's `--flag`):
    for a front end that hands the value on to a process that resolves it (`lmscope run`)."""
    option = next(option for option in _TABLE if option.name == name)
    try:
        option.parse(raw)
    except _Invalid as exc:
        raise ConfigError.for_option(option.user_key, str(exc), source, option.allowed) from None


def find_pyproject(start: Path) -> Path | None:
    """The first pyproject.toml from `start` up to the filesystem root (a directory lmscope may not look into
    ends the search: what lies above it is not the app's project)."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            return None
    return None


def _read_pyproject(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    """`[tool.lmscope]` of `path` with keys normalised (`file-path` == `file_path`), and the file it came from.

    A file lmscope cannot read or parse (not TOML, not UTF-8, no permission) is often another project's, found in
    a parent directory: it is skipped with one warning, and `(empty, None)` returned. A `[tool.lmscope]` that
    parses but holds a bad value is lmscope's own setting, and raises ConfigError.
    """
    if path is None or _toml is None:
        return {}, None
    try:
        with path.open("rb") as stream:
            document = _toml.load(stream)
    except (OSError, UnicodeDecodeError, _toml.TOMLDecodeError) as exc:
        detail = " ".join(str(exc).split())
        if (str(path), detail) not in _warned:
            _warned.add((str(path), detail))
            logger.warning("lmscope: ignoring %s: cannot read it (%s: %s); lmscope runs without [tool.lmscope]",
                           path, type(exc).__name__, detail)
        return {}, None
    tool = document.get("tool")
    table = tool.get("lmscope", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"lmscope: {PYPROJECT_TABLE} in {path} must be a table, got {_show(table)}")
    config = {key.replace("-", "_"): value for key, value in table.items()}
    _reject_unknown(list(config), f"{path} {PYPROJECT_TABLE}")
    return config, path


def _layers(option: _Option, given: Mapping[str, object], environ: Mapping[str, str],
            config: Mapping[str, object], config_source: str) -> Iterator[tuple[object, str]]:
    """(raw value, source label) of every layer that has the option, highest first."""
    if option.user_key in given:
        yield given[option.user_key], ARGUMENT
    for variable in option.env:
        # An empty variable counts as unset, as the OTel SDK treats its own variables.
        if environ.get(variable, "").strip():
            yield environ[variable], variable
    if option.user_key in config:
        yield config[option.user_key], config_source


def _resolve(option: _Option, given: Mapping[str, object], config: Mapping[str, object],
             pyproject: Path | None) -> tuple[object, str]:
    """(value, source) from the highest layer with a good value. A bad value of lmscope's own (argument,
    LMSCOPE_*, pyproject) raises ConfigError; a bad standard or foreign variable is skipped with a warning, or, for
    a privacy switch (`alias_unreadable`), stands for its safe value."""
    config_source = f"{pyproject} {PYPROJECT_TABLE}"
    ignored: list[tuple[str, object, str]] = []
    for raw, source in _layers(option, given, os.environ, config, config_source):
        alias = source in option.env_aliases
        try:
            value = (option.alias_parse if alias and option.alias_parse is not None else option.parse)(raw)
        except _Invalid as exc:
            if not alias:
                raise ConfigError.for_option(option.user_key, str(exc), source, option.allowed) from None
            ignored.append((source, raw, f"{exc} (allowed: {option.alias_allowed or option.allowed})"))
            if option.alias_unreadable is None:
                continue
            value = option.alias_unreadable()
        if option.config_relative and source == config_source and pyproject is not None:
            value = os.path.join(pyproject.parent, cast(str, value))  # an absolute value stays as it is
        break
    else:
        value, source = option.default(), DEFAULT
    for variable, raw, problem in ignored:
        instead = f"{option.user_key}={_show(_masked(value))} ({'from ' + source if source != DEFAULT else DEFAULT})"
        warn_ignored_variable(variable, str(raw), problem, instead)
    return value, source


def resolve_options(**kwargs: object) -> Options:
    """Resolve every option: keyword argument > LMSCOPE_<NAME> (then OTEL_* aliases) > pyproject > default.

    A keyword argument of None counts as not given. An option no chosen exporter reads keeps its default.
    Raises `ConfigError` on an unknown option or a bad value of lmscope's own; warns about a bad standard one.

    Example:
        >>> resolve_options(exporters="console,file").exporters
        ('console', 'file')
    """
    given = {name: value for name, value in kwargs.items() if value is not None}
    _reject_unknown(list(given), ARGUMENT)
    pyproject = find_pyproject(Path.cwd())
    config, pyproject = _read_pyproject(pyproject)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    # Options every run reads first (the exporter lists among them), then those only some exporters read.
    for option in sorted(_TABLE, key=lambda option: option.used_by is not None):
        used_by = option.used_by
        if used_by is not None and not used_by.by_any(cast("tuple[str, ...]", values["exporters"]),
                                                      cast("tuple[str, ...]", values["metrics_exporters"])):
            values[option.name], sources[option.name] = option.default(), DEFAULT  # not parsed: nobody reads it
            continue
        values[option.name], sources[option.name] = _resolve(option, given, config, pyproject)
    return Options(**cast(dict[str, Any], values), sources=MappingProxyType(sources))
