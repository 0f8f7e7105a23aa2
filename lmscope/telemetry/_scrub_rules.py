"""What counts as a credential or as binary in captured content: key names, text shapes, and cheap pre-checks.

Linear time. Every repeat in these patterns is bounded (`{20,512}`), or anchored by a look-behind that lets a
match start only where a run begins (`(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{1024,}`), so no input can make a search
backtrack quadratically; `re.sub` resumes after each match, so a rule whose Python `check` keeps a match rescans
nothing. tests/telemetry/test_scrubber.py feeds each rule 100k-character adversarial strings.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._binary import describe_base64
from ._memo import BoundedMemo

REDACTED: Final = "[REDACTED]"

# --- credential keys -----------------------------------------------------------------------------------------
# Matched by word parts (split at `_ - .`, spaces and camelCase), not substrings: `max_tokens`, `input_tokens`,
# `num_tokens`, `tokenizer`, `passages`, `author`, `cache_key` name no credential; `token`, `access_token`,
# `authToken`, `x-api-key`, `Set-Cookie`, `session_id` do. A session id is a credential in a web app (whoever
# holds it is logged in), so `session` counts, as in Logfire; lmscope's own `session.id` attribute, from
# `lmscope.context(session_id=...)`, is not content and is not scrubbed.
_CREDENTIAL_WORDS: Final = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "cookie", "cookies", "session",
    "credential", "credentials", "authorization", "auth", "jwt", "csrf", "xsrf", "bearer",
    # written as one word in some APIs and cookies
    "apikey", "sessionid", "accesstoken", "authtoken", "refreshtoken", "privatekey", "secretkey", "accesskey",
})
_KEY_QUALIFIERS: Final = frozenset({"api", "private", "access", "signing", "encryption", "ssh"})
"""`<qualifier> key` names a credential (`api_key`, `privateKey`); `key` alone (`cache_key`) does not."""
_MEASURES: Final = frozenset({"count", "counts", "limit", "limits", "budget", "usage", "size", "length", "type",
                              "types", "ttl", "timeout", "expiry", "expires"})
"""A last word part that makes the key a fact about a secret, not the secret: `token_count`, `session_ttl`."""
_WORD_PARTS: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
KEY_WORD: Final = re.compile("|".join(sorted(_CREDENTIAL_WORDS | {"key"}, key=len, reverse=True)), re.IGNORECASE)
"""Finds the credential word in a key: the `pattern_match` a key match hands to `scrub_callback`."""
_MAX_KEY_CHARS: Final = 128


def _names_credential(key: str) -> bool:
    parts = [part.lower() for part in _WORD_PARTS.findall(key[-_MAX_KEY_CHARS:])]
    if not parts or parts[-1] in _MEASURES:
        return False
    if any(part in _CREDENTIAL_WORDS for part in parts):
        return True
    return any(part == "key" and index > 0 and parts[index - 1] in _KEY_QUALIFIERS
               for index, part in enumerate(parts))


is_credential_key: BoundedMemo[str, bool] = BoundedMemo(_names_credential)
"""is_credential_key(key) -> whether the value under `key` is a credential (memoised: keys repeat)."""


def has_credential_key(json_text: str) -> bool:
    """Whether a key of `json_text` names a credential: JSON as lmscope encodes it (`": ` after each key), or
    compact (`":`), as a user may have written it into a prompt.

    Splitting at `":` runs at C speed; a regex for JSON keys costs 5-25 µs on a 2 KB prompt. A string value that
    holds `":` yields a bogus key, which can only send the text down the careful path for nothing. A key written
    with a space before its colon (`"password" : ...`) is not looked for: another scan of every captured string
    for a rare style."""
    pieces = json_text.split('":')
    pieces.pop()
    # Each distinct key once: a list of records repeats the same few keys (`rfind` stops at the key's opening quote).
    return any(map(is_credential_key, {piece[piece.rfind('"') + 1:] for piece in pieces}))


# --- credential shapes in text -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    """Literal text the pattern cannot match without; the rule is skipped when none is in the string."""
    lowered: bool = False
    """Triggers are looked for in the lower-cased string."""
    group: str | None = None
    """Only this group is redacted (the credential after `Bearer `, say); None: the whole match."""
    check: Callable[[re.Match[str]], bool] | None = None
    """A match this returns False for is left as it is (a `Basic` that is English, not base64 `user:pass`)."""


def _basic_credentials(match: re.Match[str]) -> bool:
    """`Basic dXNlcjpwYXNz` is base64 of `user:pass`; `Basic principles` is English."""
    payload = match.group("secret")
    try:
        return b":" in base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return False


_AUTH_SCHEMES: Final = frozenset({"bearer", "basic", REDACTED.lower()})


def _assigns_credential(match: re.Match[str]) -> bool:
    """`password=...` but not `max_tokens=...`; `Authorization: Bearer <token>` is left to the `bearer` rule."""
    secret = match.group("secret")
    # `[REDACTED` too: an unquoted value stops at `]`, and an earlier rule may have redacted this one already.
    return is_credential_key(match.group("key")) and secret.lower() not in _AUTH_SCHEMES \
        and not secret.startswith(REDACTED[:-1])


_ASSIGNMENT: Final = re.compile(
    r"(?<![A-Za-z0-9])(?P<key>(?:[A-Za-z0-9]{1,32}[_.-]){0,3}"
    r"(?:passw(?:or)?d|pwd|passphrase|secret|token|cookie|session|credentials?|authorization|auth"
    r"|jwt|csrf|xsrf|bearer|api[_-]?key|private[_-]?key|access[_-]?key)(?:[_.-][A-Za-z0-9]{1,32}){0,3})"
    r"[\"']?[ \t]{0,3}[:=][ \t]{0,3}(?P<quote>[\"'])?"
    r"(?P<secret>(?(quote)[^\"'\n]{1,512}|[^\s\"',;)}\]]{1,512}))", re.IGNORECASE)
"""`password=hunter2`, `'api_key': 'abc'` in free text (an exception message, a dict's repr); keeps the key."""

_URL_KEY_NAMES: Final = frozenset({"key", "sig", "signature"})
"""URL parameters that carry a credential though `key` alone is no credential key in JSON (`?key=` of Google APIs,
signed URLs' `sig=`)."""


def _url_credential(match: re.Match[str]) -> bool:
    """`?key=...`, `&access_token=...`, `#id_token=...`, not `?page=2` or an already redacted value."""
    key = match.group("key")
    return match.group("secret") != REDACTED and (key.lower() in _URL_KEY_NAMES or is_credential_key(key))


_URL_TOKEN: Final = re.compile(r"(?<=[?&#])(?P<key>[A-Za-z0-9_.-]{1,64})=(?P<secret>[^&#\s\"'<>\\]{1,1024})")
_JSON_MEMBER: Final = re.compile(r'"(?P<key>[^"\\\n]{1,128})"[ \t]{0,3}:[ \t]{0,3}"(?P<secret>[^"\\\n]{1,4096})"')
"""`"password": "hunter2"` as JSON inside a string: a dict input DSPy wrote into the prompt as JSON text."""


def _json_member_credential(match: re.Match[str]) -> bool:
    return match.group("secret") != REDACTED and is_credential_key(match.group("key"))


_COOKIE_HEADER: Final = re.compile(r"(?<![A-Za-z0-9_-])(?:[Ss]et-)?[Cc]ookie:[ \t]{0,8}(?P<secret>[^\r\n\"\\]{1,4096})")

SHAPE_RULES: Final[tuple[Rule, ...]] = (
    # Also as a repr shortens it (pydantic's `'sk-pro...5y6Q1w2'` in a validation error quotes both ends).
    Rule("provider_key", re.compile(r"(?<![A-Za-z0-9_-])sk-(?:[A-Za-z0-9_-]{20,512}"
                                    r"|[A-Za-z0-9_-]{1,512}(?:\.\.\.|…)[A-Za-z0-9_-]{4,512})"), ("sk-",)),
    Rule("aws_access_key", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), ("AKIA", "ASIA")),
    Rule("github_token",
         re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"),
         ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Rule("google_api_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"), ("AIza",)),
    Rule("jwt", re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,4096}"
                           r"\.[A-Za-z0-9_-]{0,4096}"), ("eyJ",)),
    Rule("bearer", re.compile(r"(?<![A-Za-z0-9])[Bb]earer[ \t]{1,8}(?P<secret>[A-Za-z0-9._~+/=-]{16,4096})"),
         ("bearer",), lowered=True, group="secret"),
    Rule("basic_auth", re.compile(r"(?<![A-Za-z0-9])Basic[ \t]{1,8}(?P<secret>[A-Za-z0-9+/]{4,1024}={0,2})"
                                  r"(?![A-Za-z0-9+/=])"), ("Basic",), group="secret", check=_basic_credentials),
    Rule("url_userinfo", re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://"
                                    r"(?P<secret>[^\s/?#@:\"'<>]{0,256}:[^\s/?#@\"'<>]{0,256})@"),
         ("://",), group="secret"),
    # A query or fragment parameter that names a credential: `?key=...` (Google), `&token=`, `#access_token=`.
    Rule("url_token", _URL_TOKEN, ("?", "#", "&"), group="secret", check=_url_credential),
    # JSON in text (a dict in a prompt): the value of a member whose key names a credential.
    Rule("json_member", _JSON_MEMBER, ('":',), group="secret", check=_json_member_credential),
    # A `Cookie:`/`Set-Cookie:` header quoted in text: the whole header value (session ids, CSRF tokens).
    Rule("cookie_header", _COOKIE_HEADER, ("ookie:",), group="secret"),
)
"""Shapes of credentials, tried in this order on every captured string."""
_HOST: Final = (r"(?:(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}\]"
                r"|[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63})(?::\d{1,5})?"
                r"|[A-Za-z][A-Za-z0-9-]{0,62}:\d{1,5})(?![A-Za-z0-9.-])")
"""A host after `@`: localhost, an IPv4 or [IPv6] address or a dotted name ending in a top-level domain, each with an
optional port, or a single name with a port (`db:5432`); not `0.29.4` (`npm:pyodide@0.29.4`), `sha256:0a1b...` (an
image digest) or `W` (`x:x@W`)."""
_HOST_USERINFO: Final = re.compile(r"(?<![^\s/?#@:\"'<>()\[\]])(?P<user>[^\s/?#@:\"'<>()\[\]]{1,256})"
                                   rf":(?P<secret>[^\s/?#@:\"'<>]{{1,256}})@(?={_HOST})")
"""`alice:pw@127.0.0.1:9` with no scheme in front: how an HTTP client's connection error names the host it tried
(DSPy's native engine: `failed to connect to alice:pw@host`). Starts only where a run of its characters begins."""


def _host_password(match: re.Match[str]) -> bool:
    """Not redacted already (a URL rule came first), and not an e-mail address after `mailto:`."""
    return match.group("secret") != REDACTED and match.group("user").lower() != "mailto"


FREE_TEXT_RULES: Final[tuple[Rule, ...]] = (
    *SHAPE_RULES,
    Rule("credential_assignment", _ASSIGNMENT,
         ("passw", "passp", "pwd", "secret", "token", "cookie", "session", "credential", "auth", "key", "jwt", "srf",
          "bearer"),
         lowered=True, group="secret", check=_assigns_credential),
    Rule("host_userinfo", _HOST_USERINFO, ("@",), group="secret", check=_host_password),
)
"""Exception messages and tracebacks also quote `password=...` and `user:pass@host`: looked for there only (rare
and short), not in every prompt and document, where triggers like `key`, `token` and `@` would cost every span a
regex pass."""

# --- binary --------------------------------------------------------------------------------------------------
MIN_BLOB_CHARS: Final = 1024
_DATA_URL: Final = re.compile(r"data:(?P<mime>[A-Za-z]{1,32}/[A-Za-z0-9.+-]{1,64})?(?:;[A-Za-z0-9=.+_-]{1,64}){0,8}"
                              r";base64,(?P<payload>[A-Za-z0-9+/]*={0,2})")
_BASE64_RUN: Final = re.compile(rf"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{{{MIN_BLOB_CHARS},}}={{0,2}}")
"""A run this long without a space is an encoded blob, not prose; shorter ones (hashes, ids) stay."""
_MIN_DATA_URL_PAYLOAD: Final = 16


def _describe_data_url(match: re.Match[str]) -> str:
    payload = match.group("payload")
    if len(payload) < _MIN_DATA_URL_PAYLOAD:
        return match.group(0)
    return describe_base64(payload, match.group("mime") or None) or match.group(0)


def _describe_blob(match: re.Match[str]) -> str:
    return describe_base64(match.group(0)) or match.group(0)


# --- pre-checks ----------------------------------------------------------------------------------------------
_RUN_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/=-"
_SKELETON: Final = bytes(ord("a") if byte in _RUN_CHARS else ord(" ") for byte in range(256))
_SHAPE_RUN: Final = b"a" * 16
"""Every shape but `Basic` and `user:pass@` holds 16 key characters in a row (`sk-` and 20 more, ...)."""
_BLOB_RUN: Final = b"a" * MIN_BLOB_CHARS


def _skeleton(text: str) -> bytes:
    """`text` as bytes, key and base64 characters as `a` and the rest as spaces, so runs are found with `in`.

    `bytes.translate` and `in` run at C speed (~2 µs for a 2 KB prompt); a regex scan costs ~10 ns a character."""
    return text.encode("utf-8", "surrogatepass").translate(_SKELETON)


def describe_binary(text: str) -> str:
    """`text` with data URLs and long base64 runs replaced by their description (`_binary.describe_bytes`)."""
    if ";base64," in text:
        text = _DATA_URL.sub(_describe_data_url, text)
    if len(text) >= MIN_BLOB_CHARS and _BLOB_RUN in _skeleton(text):
        text = _BASE64_RUN.sub(_describe_blob, text)
    return text


def may_hold(text: str, *, secrets: bool, is_json: bool) -> bool:
    """False when `text` certainly holds no binary (and, with `secrets`, no credential): the common case, cheap."""
    skeleton = _skeleton(text)
    if not secrets:
        return ";base64," in text or _BLOB_RUN in skeleton
    # A 16-character run also covers every data URL and blob worth describing (payloads under 16 are kept).
    if _SHAPE_RUN in skeleton or "Basic " in text or ("@" in text and "://" in text) or "ookie:" in text:
        return True
    if "=" in text and ("?" in text or "#" in text or "&" in text) and _URL_TOKEN.search(text) is not None:
        return True
    return (is_json or '":' in text) and has_credential_key(text)  # JSON, or JSON written into text
