"""Options: one declarative table and one resolver.

Each option is resolved from the first layer that has it: keyword argument > environment (`LMSCOPE_<NAME>`,
then the standard `OTEL_*` aliases of that option) > `[tool.lmscope]` in the app's pyproject.toml > default.
Standard OTel variables rank with the environment, above pyproject.toml, because a deployment sets them to
describe where it runs (collector protocol, service name) and that must beat what the app checked in.

A bad value raises `ConfigError` with one line: the option, where the value came from, the value, what is
allowed. Values that may carry credentials (endpoint userinfo and query) are masked in that line.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Final, Literal, Mapping, Sequence, cast
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.10 only
    try:
        import tomli as _toml
    except ImportError:  # no TOML reader: pyproject.toml is skipped rather than half-read
        _toml = None

EXPORTERS: Final = ("console", "file", "otlp")
"""Exporter names that send spans somewhere; a new backend preset adds its name here."""
NO_EXPORT: Final = "none"
"""The exporter name that turns export off; it cannot be combined with the others."""
OTLP_PROTOCOLS: Final = ("http/protobuf", "grpc")
CONSOLE_STREAMS: Final = ("stderr", "stdout")
DEFAULT_SERVICE_NAME: Final = "lmscope-app"
DEFAULT_MAX_QUEUE_SIZE: Final = 8192
"""Spans queued per exporter. Four times the SDK's 2,048: a tight DSPy loop (cache hits) makes ~7,000 spans/s
and a busy machine can keep the export thread off the CPU for a second; about 5 KB per span with content."""

ARGUMENT: Final = "argument"
"""Source label of a keyword argument."""
DEFAULT: Final = "default"
"""Source label of a value nobody set."""
PYPROJECT_TABLE: Final = "[tool.lmscope]"

_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


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
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    capture_content: bool = True
    console_stream: Literal["stderr", "stdout"] = "stderr"
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
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


def mask_url(url: str) -> str:
    """Hide userinfo and query of a URL-ish string: both are where people put tokens."""
    return re.sub(r"\?.*$", "?***", re.sub(r"[^/@]*@", "***@", url))


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


def _exporters(raw: object) -> tuple[str, ...]:
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
        if name and name not in (*EXPORTERS, NO_EXPORT):
            raise _Invalid(f"unknown exporter {item.strip()!r}")
        if name and name not in names:
            names.append(name)
    if not names:
        raise _Invalid(f"no exporter named in {_show(raw)}")
    if NO_EXPORT in names and len(names) > 1:
        raise _Invalid(f"'none' cannot be combined with other exporters: {_show(raw)}")
    return tuple(names)


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
class _Option:
    name: str
    parse: Callable[[object], object]
    allowed: str
    default: Callable[[], object]
    env_aliases: tuple[str, ...] = ()
    """Standard OTel variables read after LMSCOPE_<NAME>."""
    config_relative: bool = False
    """A relative path from pyproject.toml is relative to that file, as ruff and pytest read theirs."""

    @property
    def env(self) -> tuple[str, ...]:
        return (f"LMSCOPE_{self.name.upper()}", *self.env_aliases)


_TABLE: Final[tuple[_Option, ...]] = (
    _Option("service_name", _string, "a non-empty string",
            lambda: env_service_name() or DEFAULT_SERVICE_NAME, env_aliases=("OTEL_SERVICE_NAME",)),
    _Option("exporters", _exporters, ", ".join((*EXPORTERS, NO_EXPORT)), lambda: ("console",)),
    _Option("file_path", _path, "a non-empty file path", lambda: "lmscope-traces.jsonl", config_relative=True),
    _Option("otlp_endpoint", _endpoint, "an http:// or https:// URL with a host, e.g. http://localhost:4318",
            lambda: None),
    _Option("otlp_protocol", _choice("protocol", OTLP_PROTOCOLS), ", ".join(OTLP_PROTOCOLS),
            lambda: "http/protobuf",
            env_aliases=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")),
    _Option("capture_content", _boolean, "true, false, 1, 0, yes, no", lambda: True),
    _Option("console_stream", _choice("stream", CONSOLE_STREAMS), ", ".join(CONSOLE_STREAMS), lambda: "stderr"),
    _Option("max_queue_size", _positive_int, "an integer > 0", lambda: DEFAULT_MAX_QUEUE_SIZE,
            env_aliases=("OTEL_BSP_MAX_QUEUE_SIZE",)),
)
OPTION_NAMES: Final[tuple[str, ...]] = tuple(option.name for option in _TABLE)


def _reject_unknown(names: Sequence[str], source: str) -> None:
    for name in names:
        if name not in OPTION_NAMES:
            raise ConfigError.for_option(name, "unknown option", source, ", ".join(OPTION_NAMES))


def find_pyproject(start: Path) -> Path | None:
    """The first pyproject.toml from `start` up to the filesystem root."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_pyproject(path: Path | None) -> tuple[dict[str, Any], str]:
    """`[tool.lmscope]` of `path` with keys normalised (`file-path` == `file_path`), and its source label."""
    if path is None or _toml is None:
        return {}, ""
    source = f"{path} {PYPROJECT_TABLE}"
    try:
        with path.open("rb") as stream:
            document = _toml.load(stream)
    except (OSError, _toml.TOMLDecodeError) as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigError(f"lmscope: cannot read {PYPROJECT_TABLE} from {path}: {detail}") from None
    tool = document.get("tool")
    table = tool.get("lmscope", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"lmscope: {PYPROJECT_TABLE} in {path} must be a table, got {_show(table)}")
    config = {key.replace("-", "_"): value for key, value in table.items()}
    _reject_unknown(list(config), source)
    return config, source


def _lookup(option: _Option, given: Mapping[str, object], environ: Mapping[str, str],
            config: Mapping[str, object], config_source: str) -> tuple[object, str]:
    """(raw value, source label) from the highest layer that has the option."""
    if option.name in given:
        return given[option.name], ARGUMENT
    for variable in option.env:
        # An empty variable counts as unset, as the OTel SDK treats its own variables.
        if environ.get(variable, "").strip():
            return environ[variable], variable
    if option.name in config:
        return config[option.name], config_source
    return None, DEFAULT


def resolve_options(**kwargs: object) -> Options:
    """Resolve every option: keyword argument > LMSCOPE_<NAME> (then OTEL_* aliases) > pyproject > default.

    A keyword argument of None counts as not given. Raises `ConfigError` on an unknown option or bad value.

    Example:
        >>> resolve_options(exporters="console,file").exporters
        ('console', 'file')
    """
    given = {name: value for name, value in kwargs.items() if value is not None}
    _reject_unknown(list(given), ARGUMENT)
    pyproject = find_pyproject(Path.cwd())
    config, config_source = _read_pyproject(pyproject)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for option in _TABLE:
        raw, source = _lookup(option, given, os.environ, config, config_source)
        sources[option.name] = source
        if source == DEFAULT:
            values[option.name] = option.default()
            continue
        try:
            value = option.parse(raw)
        except _Invalid as exc:
            raise ConfigError.for_option(option.name, str(exc), source, option.allowed) from None
        if option.config_relative and source == config_source and pyproject is not None:
            value = os.path.join(pyproject.parent, cast(str, value))  # an absolute value stays as it is
        values[option.name] = value
    return Options(**cast(dict[str, Any], values), sources=MappingProxyType(sources))
