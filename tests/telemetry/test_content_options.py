"""Content options: scrub, scrub_patterns, scrub_callback, max_content_chars, and who decides what is captured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import lmscope
from lmscope._instrument import _content_policy
from lmscope.telemetry._options import ConfigError, resolve_options

pytestmark = pytest.mark.usefixtures("clean_env")


def policy(**kwargs: object):
    callback = kwargs.pop("scrub_callback", None)
    return _content_policy(resolve_options(**kwargs), callback)


def test_defaults() -> None:
    resolved = policy()
    assert (resolved.capture_inputs, resolved.capture_outputs, resolved.max_chars) == (True, True, 16384)
    assert resolved.scrubber.secrets and resolved.scrubber.patterns == () and resolved.scrubber.callback is None


def test_options_reach_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCOPE_SCRUB_PATTERNS", r'["acct-\\d+", "x{2}"]')
    monkeypatch.setenv("LMSCOPE_MAX_CONTENT_CHARS", "512")
    resolved = policy(scrub_callback=print)
    assert [p.pattern for p in resolved.scrubber.patterns] == [r"acct-\d+", "x{2}"]
    assert resolved.max_chars == 512 and resolved.scrubber.callback is print
    monkeypatch.setenv("LMSCOPE_SCRUB_PATTERNS", r"acct-\d+")  # one regex, not a JSON array
    assert [p.pattern for p in policy().scrubber.patterns] == [r"acct-\d+"]
    monkeypatch.setenv("LMSCOPE_SCRUB", "false")
    assert not policy().scrubber.secrets


@pytest.mark.parametrize(("kwargs", "env", "message"), [
    ({"scrub_patterns": ["ok", "("]}, {},
     "lmscope: scrub_patterns: regex '(' does not compile: missing ), unterminated subpattern at position 0 "
     "(from argument); allowed: a list of regexes that compile (from the environment: a JSON array, or one regex)"),
    ({}, {"LMSCOPE_SCRUB_PATTERNS": "[unclosed"},
     "lmscope: scrub_patterns: not a JSON array of regexes: '[unclosed' (from LMSCOPE_SCRUB_PATTERNS); allowed: a "
     "list of regexes that compile (from the environment: a JSON array, or one regex)"),
    ({"scrub_patterns": ["a+", 1]}, {},
     "lmscope: scrub_patterns: not a list of regex strings: ['a+', 1] (from argument); allowed: a list of regexes that "
     "compile (from the environment: a JSON array, or one regex)"),
    ({"max_content_chars": 0}, {},
     "lmscope: max_content_chars: not a positive integer: 0 (from argument); allowed: an integer > 0"),
    ({"max_content_chars": -5}, {},
     "lmscope: max_content_chars: not a positive integer: -5 (from argument); allowed: an integer > 0"),
    ({}, {"LMSCOPE_MAX_CONTENT_CHARS": "lots"},
     "lmscope: max_content_chars: not an integer: 'lots' (from LMSCOPE_MAX_CONTENT_CHARS); allowed: an integer > 0"),
    ({"scrub": 1}, {}, "lmscope: scrub: not a boolean: 1 (from argument); allowed: true, false, 1, 0, yes, no, on, off"),
    ({}, {"LMSCOPE_SCRUB": "sometimes"},
     "lmscope: scrub: not a boolean: 'sometimes' (from LMSCOPE_SCRUB); allowed: true, false, 1, 0, yes, no, on, off"),
    ({"scrub_callback": "redact"}, {},
     "lmscope: scrub_callback: not callable: 'redact' (from argument); allowed: a function taking a "
     "lmscope.ScrubMatch, or None"),
])
def test_bad_values_raise_one_line_config_error(monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object],
                                                env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        policy(**kwargs)
    assert str(caught.value) == message


@pytest.mark.parametrize(("env", "sides", "warning"), [
    ({"OPENINFERENCE_HIDE_INPUTS": "maybe", "OPENINFERENCE_HIDE_OUTPUTS": "false"}, (False, True),
     "lmscope: ignoring OPENINFERENCE_HIDE_INPUTS='maybe': not a boolean: 'maybe' (allowed: true, false, 1, 0, yes, "
     "no, on, off); lmscope uses true (content hidden) instead"),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "disabled"}, (False, False),
     "lmscope: ignoring OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT='disabled': not a boolean: 'disabled' "
     "(allowed: true, false, 1, 0, yes, no, on, off, or the OTel GenAI modes no_content, event_only, span_only, "
     "span_and_event); lmscope uses capture_content=False (from "
     "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT) instead"),
])
def test_bad_standard_content_variables_hide_content_and_warn_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, env: dict[str, str],
        sides: tuple[bool, bool], warning: str) -> None:
    """Another tool's privacy switch lmscope cannot read is not an error (a warning, not a ConfigError), and it
    fails closed: whoever set it meant to hide content (OTel's own GenAI instrumentations capture only for `true`).
    It used to be ignored, and content captured."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        made = [policy() for _ in range(2)]
    assert [(p.capture_inputs, p.capture_outputs) for p in made] == [sides, sides]
    assert [record.getMessage() for record in caplog.records] == [warning]


def test_instrument_rejects_a_bad_callback_before_setting_anything_up() -> None:
    with pytest.raises(lmscope.ConfigError, match="scrub_callback: not callable: 42"):
        lmscope.instrument(exporters="none", scrub_callback=42)  # type: ignore[arg-type]
    assert lmscope.active() is None


OTEL = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
HIDE_IN, HIDE_OUT = "OPENINFERENCE_HIDE_INPUTS", "OPENINFERENCE_HIDE_OUTPUTS"


@pytest.mark.parametrize(("argument", "env", "toml", "sides"), [
    (None, {}, None, (True, True)),
    (None, {OTEL: "false"}, None, (False, False)),
    (None, {OTEL: "NO_CONTENT"}, None, (False, False)),
    (None, {OTEL: "EVENT_ONLY"}, None, (False, False)),
    (None, {OTEL: "span_only"}, "false", (True, True)),  # a deployment variable outranks pyproject.toml
    (None, {HIDE_IN: "true"}, None, (False, True)),
    (None, {HIDE_OUT: "TRUE"}, None, (True, False)),
    (None, {HIDE_IN: "false", HIDE_OUT: "false"}, None, (True, True)),
    (None, {OTEL: "off"}, None, (False, False)),
    (None, {OTEL: "On"}, None, (True, True)),
    (None, {HIDE_IN: "on", HIDE_OUT: "off"}, None, (False, True)),
    (None, {OTEL: "whatever"}, "true", (False, False)),  # an unreadable privacy switch hides, above pyproject
    (None, {OTEL: "true", HIDE_OUT: "true"}, None, (True, False)),
    (None, {HIDE_IN: "true"}, "true", (False, True)),
    (None, {}, "false", (False, False)),
    (None, {"LMSCOPE_CAPTURE_CONTENT": "true", OTEL: "false", HIDE_IN: "true"}, None, (True, True)),
    (None, {"LMSCOPE_CAPTURE_CONTENT": "false"}, None, (False, False)),
    (True, {"LMSCOPE_CAPTURE_CONTENT": "false", OTEL: "false", HIDE_IN: "true", HIDE_OUT: "true"}, None, (True, True)),
    (False, {OTEL: "true"}, "true", (False, False)),
])
def test_privacy_precedence(monkeypatch: pytest.MonkeyPatch, clean_env: Path, argument: bool | None,
                            env: dict[str, str], toml: str | None, sides: tuple[bool, bool]) -> None:
    """The README's table: the argument and LMSCOPE_CAPTURE_CONTENT win; otherwise the OTel GenAI and OpenInference
    switches turn capture off (each side for OpenInference's); pyproject.toml and the default rank below them."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if toml is not None:
        (clean_env / "pyproject.toml").write_text(f"[tool.lmscope]\ncapture_content = {toml}\n", encoding="utf-8")
    resolved = policy(capture_content=argument)
    assert (resolved.capture_inputs, resolved.capture_outputs) == sides
