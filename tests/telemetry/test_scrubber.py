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
                                 "auth", "jwt",
                                 # plurals, providers' keys, pass phrases
                                 "passwords", "db_passwords", "api_keys", "access_keys", "apiKeys", "tokens",
                                 "access_tokens", "refreshTokens", "openai_key", "MISTRAL_KEY", "stripe_key",
                                 "anthropicKey", "hf_key", "pass_phrase", "passPhrase", "SharedAccessKey",
                                 "X-Amz-Security-Token", "X-Amz-Credential"])
def test_credential_keys(key: str) -> None:
    assert is_credential_key(key)


@pytest.mark.parametrize("key", ["max_tokens", "input_tokens", "num_tokens", "output_tokens", "tokenizer",
                                 "max_completion_tokens", "token_count", "session_ttl", "passages", "passage",
                                 "author", "authors", "cache_key", "key", "keys", "monkey", "question", "secretary",
                                 "temperature", "",
                                 "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
                                 "tokens_count", "primary_key", "sort_key", "cache_keys", "api_keys_count", "passes",
                                 "phrase", "openai_model", "stripe_customer", "SharedAccessKeyName", "secret_name"])
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
    # Other providers' shapes, Azure connection strings, AWS secret keys, signed URLs.
    ("stripe sk_live_" + "D" * 24 + " and rk_test_" + "e4" * 8, "stripe [REDACTED] and [REDACTED]"),
    ("hf hf_" + "G1" * 17 + ", groq gsk_" + "H2" * 26, "hf [REDACTED], groq [REDACTED]"),
    ("load hf_hub_download_model_files_and_weights", "load hf_hub_download_model_files_and_weights"),
    ("https://b.s3.amazonaws.com/x?X-Amz-Algorithm=AWS4&X-Amz-Signature=" + "a1b2" * 16 + "&X-Amz-Date=1",
     "https://b.s3.amazonaws.com/x?X-Amz-Algorithm=AWS4&X-Amz-Signature=[REDACTED]&X-Amz-Date=1"),
    ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + "Ab+/" * 22 + "==;EndpointSuffix=core.windows.net",
     "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=[REDACTED];EndpointSuffix=core.windows.net"),
    ("Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" + "Zy9+" * 11,
     "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=[REDACTED]"),
    ("[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
     "[default]\naws_secret_access_key = [REDACTED]\n"),
    # `Authorization:` with a scheme, any case, short credentials too; prose after `Authorization:` stays.
    ("Authorization: Token tokSchemeVal1 / AUTHORIZATION: BEARER UPPERBEARERVAL4UPPERBEARER",
     "Authorization: Token [REDACTED] / AUTHORIZATION: BEARER [REDACTED]"),
    ("Authorization: Bearer shortTok5, Proxy-Authorization: ApiKey k3y",
     "Authorization: Bearer [REDACTED], Proxy-Authorization: ApiKey [REDACTED]"),
    ("Authorization: Only admins may approve refunds.", "Authorization: Only admins may approve refunds."),
    # The password runs to the authority's last `@`.
    ("https://bob:pwWith@AtEEE@host.example.com/", "https://[REDACTED]@host.example.com/"),
    # A Python dict's repr, and JSON with a space before the colon.
    ("settings: {'api_key': 'reprDictKeyAAA', 'model': 'gpt'}", "settings: {'api_key': '[REDACTED]', 'model': 'gpt'}"),
    ("{'password': \"it's\", 'pin': 1234, 'secrets': ['a', 'b'], 'n': 2}",
     "{'password': \"[REDACTED]\", 'pin': 1234, 'secrets': \"[REDACTED]\", 'n': 2}"),
])
def test_credential_shapes_in_strings(text: str, expected: str) -> None:
    assert scrub_json({"q": text}) == ({"q": expected}, expected != text)
    assert Scrubber().text(text, "k") == (expected, expected != text)


def test_json_members_in_text_lose_escaped_strings_numbers_objects_and_lists() -> None:
    """A dict DSPy wrote into a prompt as JSON: a credential member's value whatever its type, escapes included."""
    config = {"credentials": {"user": "bob", "value": "nestedCredValue777"}, "password": 'esc"Pw\\Value888',
              "db": {"password": 918273645, "port": 5432}, "secrets": ["listTokenValue999", {"k": "[x]"}],
              "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
              "tokens": [], "max_tokens": 5, "use_auth": True, "note": "a [bracket] {brace}"}
    prompt = "[[ ## payload ## ]]\n" + json.dumps(config) + "\n\nRespond with `[[ ## answer ## ]]`."
    expected = ("[[ ## payload ## ]]\n" + json.dumps({
        "credentials": "[REDACTED]", "password": "[REDACTED]", "db": {"password": "[REDACTED]", "port": 5432},
        "secrets": "[REDACTED]", "private_key": "[REDACTED]", "tokens": "[REDACTED]", "max_tokens": 5,
        "use_auth": True, "note": "a [bracket] {brace}"}) + "\n\nRespond with `[[ ## answer ## ]]`.")
    assert Scrubber().text(prompt, "k") == (expected, True)
    assert scrub_json({"messages": [{"role": "user", "content": prompt}]}) == (
        {"messages": [{"role": "user", "content": expected}]}, True)
    # Pretty-printed, and an object never closed (a cut prompt): redacted to the end of what is there.
    assert Scrubber().text(json.dumps({"credentials": {"user": "bob"}, "n": 1}, indent=2), "k")[0] == (
        '{\n  "credentials": "[REDACTED]",\n  "n": 1\n}')
    assert Scrubber().text('x {"secrets": {"a": ["b", "c"', "k")[0] == 'x {"secrets": "[REDACTED]"'


def test_json_member_callback_sees_the_value_text() -> None:
    seen: list[object] = []

    def keep(match: ScrubMatch) -> object:
        seen.append(match.value)
        return match.value

    text = '{"secrets": ["a", "b"], "password": 12, "token": "t\\"x"}'
    assert Scrubber(callback=keep).text(text, "k") == (text, False)
    assert seen == ['["a", "b"]', "12", 't\\"x']


def test_free_text_also_redacts_assignments() -> None:
    message = "connect failed: password=hunter2, token_count=5, {'api_key': 'abc def', 'max_tokens': 7}"
    assert Scrubber().text(message, "exception.message", free_text=True) == (
        "connect failed: password=[REDACTED], token_count=5, {'api_key': '[REDACTED]', 'max_tokens': 7}", True)
    # In content (prompts, documents) the assignment rule does not run: its word triggers would cost every span.
    assert Scrubber().text("password=hunter2", "k") == ("password=hunter2", False)


@pytest.mark.parametrize(("text", "expected"), [
    # camelCase keys and prefixes glued on: any key `is_credential_key` names.
    ("connect failed: dbPassword=camelPw1 clientSecret=camelSecret2", "connect failed: dbPassword=[REDACTED] "
     "clientSecret=[REDACTED]"),
    ("authToken=a1, userToken=a2, openaiApiKey=a3, SharedAccessKey=a4, pass_phrase=a5",
     "authToken=[REDACTED], userToken=[REDACTED], openaiApiKey=[REDACTED], SharedAccessKey=[REDACTED], "
     "pass_phrase=[REDACTED]"),
    ("{'clientSecret': 'x y', 'maxTokens': 7, 'db.password': 'z'}",
     "{'clientSecret': '[REDACTED]', 'maxTokens': 7, 'db.password': '[REDACTED]'}"),
    ("failed: password=pw, token_count=5, --api-key=k", "failed: password=[REDACTED], token_count=5, "
     "--api-key=[REDACTED]"),
    ("ratio=0.5 mode: fast url=https://x.example.com/a", "ratio=0.5 mode: fast url=https://x.example.com/a"),
    # `Authorization` headers: the credentials after any scheme, whatever the case; without a scheme, the value.
    ("{Authorization: Token tokSchemeErr111} / Authorization: ApiKey apiKeySchemeErr444",
     "{Authorization: Token [REDACTED]} / Authorization: ApiKey [REDACTED]"),
    ("AUTHORIZATION: BEARER UPPERBEARER333333333333 / Authorization: Bearer shortB222",
     "AUTHORIZATION: BEARER [REDACTED] / Authorization: Bearer [REDACTED]"),
    ("authorization: basic " + base64.b64encode(b"alice:lowerBasicPw3").decode() + " end",
     "authorization: basic [REDACTED] end"),
    ("Proxy-Authorization: Custom c1 and {'Authorization': 'Token dictReprTok6'} and authorization=raw7",
     "Proxy-Authorization: Custom [REDACTED] and {'Authorization': '[REDACTED]'} and "
     "authorization=[REDACTED]"),
])
def test_free_text_assignments_and_authorization_headers(text: str, expected: str) -> None:
    assert scrub_credentials(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("failed to connect to alice:hunter2@127.0.0.1:9", "failed to connect to alice:[REDACTED]@127.0.0.1:9"),
    ("login git:hunter2@github.com:443 refused", "login git:[REDACTED]@github.com:443 refused"),
    ("no route to bob:hunter2@db:5432", "no route to bob:[REDACTED]@db:5432"),
    ("bad u:hunter2@[::1]:80", "bad u:[REDACTED]@[::1]:80"),
    # `@` and `:` in the password: it runs to the last `@` before the host.
    ("failed to connect to alice:pass@Word1@127.0.0.1:9", "failed to connect to alice:[REDACTED]@127.0.0.1:9"),
    ("failed to connect to carl:pw:col33@db.example.com", "failed to connect to carl:[REDACTED]@db.example.com"),
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


def test_extra_patterns_are_tried_on_decoded_json_strings() -> None:
    """In JSON text a newline is `\\n` and a value starts after a quote: the patterns see the decoded values."""
    scrubber = Scrubber(patterns=[r"ACCT:\s+\d{8}", r"^\d{6}$"])
    assert scrub_json({"q": "customer ACCT:\n48151623 asked", "note": "ACCT:\t42424242", "pin": "123456",
                       "other": "7123456"}, scrubber) == (
        {"q": "customer [REDACTED] asked", "note": "[REDACTED]", "pin": "[REDACTED]", "other": "7123456"}, True)
    clean = json.dumps({"q": "nothing\nhere", "n": [1, "2"]})
    assert scrubber.json(clean, "input.value") == (clean, False)


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


@pytest.mark.parametrize("secrets", [True, False])
def test_wrapped_and_url_safe_base64_are_described(secrets: bool) -> None:
    png = _png(6000)
    expected = describe_bytes(png)
    wrapped = base64.encodebytes(png).decode()  # 76-character lines
    pem = "\r\n".join(base64.b64encode(png).decode()[i:i + 64] for i in range(0, 8000, 64))
    urlsafe = base64.urlsafe_b64encode(png).decode()
    value = {"wrapped_url": "data:image/png;base64," + wrapped, "urlsafe_url": "data:image/png;base64," + urlsafe,
             "upper_url": "DATA:IMAGE/PNG;BASE64," + base64.b64encode(png[:600]).decode(),
             "wrapped": f"see\n{wrapped}end", "pem": f"-----BEGIN X-----\r\n{pem}\r\n-----END X-----",
             "audio": urlsafe, "short_lines": "a" * 64 + "\n" + "b" * 64 + "\nc"}
    assert scrub_json(value, Scrubber(secrets=secrets)) == ({
        "wrapped_url": expected + "\n", "urlsafe_url": expected, "upper_url": describe_bytes(png[:600]),
        "wrapped": f"see\n{expected}\nend", "pem": f"-----BEGIN X-----\r\n{expected}\r\n-----END X-----",
        "audio": expected, "short_lines": "a" * 64 + "\n" + "b" * 64 + "\nc"}, False)


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
    '"password": "\\' * 7_143, '"password": [' * 7_693, '"password": {"a": "' * 5_264, '"k": "' + '\\"' * 50_000,
    '"password": ' + "{" * 100_000, '"secrets": ["' + "]" * 100_000, "'api_key': '\\" * 7_693, "'a': 1" * 16_667,
    '"password": 1' * 7_693, "a=" * 50_000, "a.b-c_" * 16_667 + "=", "Authorization: " * 6_667,
    "authorization: x " * 5_883, "x:a@b@" * 16_667, "http://a:" + "@" * 100_000, "a:" + "b@" * 50_000 + "db:1",
    "data:a/b;base64," + ("A" * 76 + "\n") * 1_300, ("A" * 64 + "\r\n") * 1_516 + "!",
    ("A" * 76 + "\n") * 1_300 + "=", "sk_live_" * 12_500, "hf_" * 33_334, "AccountKey=" * 9_091,
    "aws_secret_access_key=" * 4_546, "?X-Amz-Signature=" * 5_883,
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
