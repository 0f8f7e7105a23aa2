"""The scrubber on its own: which keys and shapes are credentials, binary descriptions, truncation, linear time."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import pytest

from lmscope import ScrubMatch
from lmscope.telemetry._binary import describe_bytes
from lmscope.telemetry._content import ContentPolicy, truncate
from lmscope.telemetry._scrub import Scrubber, scrub_credentials
from lmscope.telemetry._scrub_rules import FREE_TEXT_RULES, is_credential_key

OPENAI = "sk-proj-" + "A1b2C3d4" * 5
ANTHROPIC = "sk-ant-api03-" + "x9Y8z7W6" * 4
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5" * 4
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize("key", ["api_key", "apiKey", "x-api-key", "API_KEY", "password", "db_password", "passwd",
                                 "secret", "client_secret", "token", "access_token", "auth_token", "api_token",
                                 "authToken", "refresh_token", "Authorization", "cookie", "Set-Cookie", "session",
                                 "session_id", "sessionid", "credential", "credentials", "private_key", "privateKey",
                                 "auth", "jwt"])
def test_credential_keys(key: str) -> None:
    assert is_credential_key(key)


@pytest.mark.parametrize("key", ["max_tokens", "input_tokens", "num_tokens", "output_tokens", "tokenizer", "tokens",
                                 "max_completion_tokens", "token_count", "session_ttl", "passages", "passage",
                                 "author", "authors", "cache_key", "key", "keys", "monkey", "question", "secretary",
                                 "temperature", ""])
def test_not_credential_keys(key: str) -> None:
    assert not is_credential_key(key)


def scrub_json(value: object, scrubber: Scrubber | None = None) -> tuple[object, bool]:
    text, redacted = (scrubber or Scrubber()).json(json.dumps(value), "input.value")
    return json.loads(text), redacted


def test_values_under_credential_keys_are_redacted_at_any_depth() -> None:
    value = {"question": "q", "max_tokens": 5, "tokenizer": "o200k", "use_auth": True, "token": None,
             "config": {"api_key": "abc", "nested": [{"password": 1234, "user": "bob"}],
                        "credentials": {"user": "bob", "pass": "x"}}}
    assert scrub_json(value) == ({"question": "q", "max_tokens": 5, "tokenizer": "o200k", "use_auth": True,
                                  "token": None,
                                  "config": {"api_key": "[REDACTED]", "nested": [{"password": "[REDACTED]",
                                                                                   "user": "bob"}],
                                             "credentials": "[REDACTED]"}}, True)


@pytest.mark.parametrize(("text", "expected"), [
    (f"key {OPENAI} end", "key [REDACTED] end"),
    (f"{ANTHROPIC}", "[REDACTED]"),
    ("input_value='use sk-pro...1w2E3r4T5y6Q1w2E3r4T5y6', input_type=str", "input_value='use [REDACTED]', input_type=str"),
    (f"aws {AWS}.", "aws [REDACTED]."),
    (f"gh {GITHUB}", "gh [REDACTED]"),
    (f"google={GOOGLE}", "google=[REDACTED]"),
    (f"jwt: {JWT}", "jwt: [REDACTED]"),
    ("Authorization: Bearer abcdefghij0123456789", "Authorization: Bearer [REDACTED]"),
    ("Basic dXNlcjpwYXNzd29yZA== and Basic principles", "Basic [REDACTED] and Basic principles"),
    ("db at postgres://bob:hunter2@db.example.com:5432/app", "db at postgres://[REDACTED]@db.example.com:5432/app"),
    ("https://example.com/a@b and mail bob@example.com", "https://example.com/a@b and mail bob@example.com"),
    ("task-force-risk-assessment-sk-learn", "task-force-risk-assessment-sk-learn"),
    ("max_tokens=5, tokens: 7, a sk- b", "max_tokens=5, tokens: 7, a sk- b"),
    ("GET https://x.googleapis.com/v1/m?key=abc123&page=2", "GET https://x.googleapis.com/v1/m?key=[REDACTED]&page=2"),
    ("/cb#access_token=abc.def&state=x and ?page=2&q=a", "/cb#access_token=[REDACTED]&state=x and ?page=2&q=a"),
    ("Cookie: sid=abc; theme=dark\nSet-Cookie: s=1; Path=/", "Cookie: [REDACTED]\nSet-Cookie: [REDACTED]"),
    ('prompt {"password": "hunter2", "max_tokens": "5"}', 'prompt {"password": "[REDACTED]", "max_tokens": "5"}'),
    ('compact {"user":"bob","password":"hunter2"}', 'compact {"user":"bob","password":"[REDACTED]"}'),
])
def test_credential_shapes_in_strings(text: str, expected: str) -> None:
    assert scrub_json({"q": text}) == ({"q": expected}, expected != text)
    assert Scrubber().text(text, "k") == (expected, expected != text)


def test_free_text_also_redacts_assignments() -> None:
    message = "connect failed: password=hunter2, token_count=5, {'api_key': 'abc def', 'max_tokens': 7}"
    assert Scrubber().text(message, "exception.message", free_text=True) == (
        "connect failed: password=[REDACTED], token_count=5, {'api_key': '[REDACTED]', 'max_tokens': 7}", True)
    # In content (prompts, documents) the assignment rule does not run: its word triggers would cost every span.
    assert Scrubber().text("password=hunter2", "k") == ("password=hunter2", False)


@pytest.mark.parametrize(("text", "expected"), [
    ("failed to connect to alice:hunter2@127.0.0.1:9", "failed to connect to alice:[REDACTED]@127.0.0.1:9"),
    ("login git:hunter2@github.com:443 refused", "login git:[REDACTED]@github.com:443 refused"),
    ("no route to bob:hunter2@db:5432", "no route to bob:[REDACTED]@db:5432"),
    ("bad u:hunter2@[::1]:80", "bad u:[REDACTED]@[::1]:80"),
    # Not a password before a host: a package version, an image digest, an e-mail address, code in a traceback.
    ("cannot import npm:pyodide@0.29.4/pyodide.js", "cannot import npm:pyodide@0.29.4/pyodide.js"),
    ("pull python:3.11@sha256:0a1b2c3d4e5f failed", "pull python:3.11@sha256:0a1b2c3d4e5f failed"),
    ("write to mailto:bob@example.com", "write to mailto:bob@example.com"),
    ("    y = lambda x:x@W", "    y = lambda x:x@W"),
])
def test_error_text_loses_the_password_of_a_host_named_without_a_scheme(text: str, expected: str) -> None:
    """How an HTTP client names the host it could not reach (DSPy's native engine: `alice:<password>@host:port`)."""
    assert scrub_credentials(text) == expected
    assert Scrubber().text(text, "k") == (text, False)  # content: only with a scheme (`postgres://bob:...@`)


def test_text_without_secrets_is_returned_as_is() -> None:
    text = json.dumps({"question": "What is the capital of France?", "passages": ["Paris " * 300]})
    scrubbed, redacted = Scrubber().json(text, "input.value")
    assert scrubbed is text and not redacted


def test_scrub_off_keeps_credentials_but_still_describes_binary() -> None:
    blob = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x01" * 100).decode()
    value = {"api_key": OPENAI, "image": f"data:image/png;base64,{blob}"}
    assert scrub_json(value, Scrubber(secrets=False)) == (
        {"api_key": OPENAI, "image": describe_bytes(base64.b64decode(blob))}, False)


def test_extra_patterns_match_keys_and_text() -> None:
    scrubber = Scrubber(patterns=[r"acct-\d{4}", "internal_id"])
    assert scrub_json({"note": "bill acct-1234 now", "internal_id": 7, "other": 1}, scrubber) == (
        {"note": "bill [REDACTED] now", "internal_id": "[REDACTED]", "other": 1}, True)


def test_callback_sees_path_value_and_match_and_may_keep() -> None:
    seen: list[ScrubMatch] = []

    def keep_session_ids(match: ScrubMatch) -> object:
        seen.append(match)
        return match.value if match.path[-1] == "session_id" else None

    scrubber = Scrubber(callback=keep_session_ids)
    assert scrub_json({"session_id": "s-1", "cfg": {"api_key": "k"}, "q": f"use {OPENAI}"}, scrubber) == (
        {"session_id": "s-1", "cfg": {"api_key": "[REDACTED]"}, "q": "use [REDACTED]"}, True)
    assert [(m.path, m.value, m.pattern_match.group(0)) for m in seen] == [
        (("input.value", "session_id"), "s-1", "session"),
        (("input.value", "cfg", "api_key"), "k", "key"),
        (("input.value", "q"), OPENAI, OPENAI),
    ]


def test_callback_keeping_everything_reports_no_redaction() -> None:
    assert scrub_json({"api_key": "k"}, Scrubber(callback=lambda match: match.value)) == ({"api_key": "k"}, False)


def _png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


def test_binary_descriptions() -> None:
    png = _png(3000)
    digest = hashlib.sha256(png).hexdigest()[:12]
    expected = f"[image image/png 3000 bytes sha256:{digest}]"
    assert describe_bytes(png) == expected
    assert describe_bytes(b"\x00\x01") == "[binary application/octet-stream 2 bytes sha256:" + \
        hashlib.sha256(b"\x00\x01").hexdigest()[:12] + "]"
    encoded = base64.b64encode(png).decode()
    assert scrub_json({"u": f"see data:image/png;base64,{encoded} here", "b": f"raw {encoded}"}) == (
        {"u": f"see {expected} here", "b": f"raw {expected}"}, False)


def test_truncation_marker_counts_dropped_characters() -> None:
    text = "x" * 1000
    cut = truncate(text, 100)
    assert len(cut) == 100
    kept = cut.index("…")
    assert cut == "x" * kept + f"…[truncated {1000 - kept} chars]"
    assert truncate(text, 1000) is text
    assert truncate(text, 5) == "xxxxx"  # no room for the marker: cut without it
    assert ContentPolicy(max_chars=50).json(json.dumps({"q": "y" * 100}), "input.value")[0] == (
        '{"q": "' + "y" * 22 + "…[truncated 80 chars]")


ADVERSARIAL = [
    "sk-" * 33_334, "a" * 100_000, "token_" * 16_667, "eyJ" * 33_334, "eyJa." * 20_000, "Basic " * 16_667,
    "http://" + "a:" * 50_000, "x://a:" * 16_667, "data:image/png" + ";a" * 50_000, "A" * 99_999 + "!",
    "=a" * 50_000, "a@b://" * 16_667, "Bearer " * 14_286, "ghp_" * 25_000, "AKIA" * 25_000,
    "password=" * 11_112, "'api_key': '" * 8_334, "api_key_" * 12_500, "sk-ab..." * 12_500, "a:b@" * 25_000,
    ":a" * 50_000 + "@x", "x:y@" + "a." * 49_998 + "com",
    '"password": "' * 7_693, '"' + "a" * 99_999, "?token=" * 14_286, "&" + "a" * 99_999, "Set-Cookie: " * 8_334,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[text[:12] for text in ADVERSARIAL])
def test_adversarial_100k_strings_are_processed(text: str) -> None:
    """Every rule on inputs built to make a backtracking regex go quadratic: they finish (the suite would time out
    otherwise) and come back as text of bounded size."""
    assert len(text) >= 100_000
    for rule in FREE_TEXT_RULES:  # each pattern on its own, so none hides behind another's replacement
        assert isinstance(rule.pattern.sub("", text), str)
    scrubbed, _ = Scrubber().text(text, "exception.message", free_text=True)
    as_json, _ = Scrubber().json(json.dumps({"k": text}), "input.value")
    assert isinstance(json.loads(as_json)["k"], str)
    assert len(truncate(scrubbed, 16384)) <= 16384


def test_bad_extra_pattern_fails_at_construction() -> None:
    with pytest.raises(re.error):
        Scrubber(patterns=["("])
