"""What counts as a credential or as binary in captured content: key names, text shapes, and cheap pre-checks.

Linear time. Every repeat in these patterns is bounded (`{20,512}`), or anchored by a look-behind that lets a
match start only where a run begins (`(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{1024,}`), so no input can make a search
backtrack quadratically; `re.sub` resumes after each match, so a rule whose Python `check` keeps a match rescans
nothing (`_ASSIGNMENT` only looks ahead at a value, so at most 512 characters are read again for each key). A JSON
object or list under a credential key is redacted up to its closing bracket by a scan (`_bracket_end`) bounded at
`_MAX_VALUE_CHARS`, whose text is then consumed, never scanned again.
tests/telemetry/test_scrubber.py feeds each rule 100k-character adversarial strings.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._binary import describe_base64, describe_bytes
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
    # plurals (`tokens` is apart: `max_tokens` is a count)
    "passwords", "passwds", "pwds", "passphrases", "jwts", "apikeys", "sessionids", "accesstokens",
    "authtokens", "refreshtokens", "privatekeys", "secretkeys", "accesskeys",
})
_KEY_QUALIFIERS: Final = frozenset({
    "api", "private", "access", "signing", "encryption", "ssh",
    # providers: `openai_key`, `MISTRAL_KEY`, `stripe_key`
    "openai", "anthropic", "claude", "mistral", "cohere", "groq", "together", "stripe", "azure", "gemini", "google",
    "aws", "hf", "huggingface", "deepseek", "xai", "fireworks", "replicate", "perplexity", "voyage", "voyageai",
    "pinecone", "openrouter", "deepinfra", "cerebras", "nvidia", "sambanova", "anyscale", "databricks", "bedrock",
    "vertex", "watsonx", "langsmith", "langfuse", "wandb", "serpapi", "tavily", "jina", "weaviate", "qdrant",
    "elevenlabs", "deepgram", "assemblyai", "nomic", "github", "gitlab", "slack", "twilio", "sendgrid",
})
"""`<qualifier> key(s)` names a credential (`api_key`, `privateKey`, `openai_key`, `api_keys`); `key` alone
(`cache_key`, `primary_key`) does not."""
_TOKEN_QUALIFIERS: Final = frozenset({"access", "refresh", "auth", "oauth", "api", "id", "bearer", "session",
                                      "security", "csrf", "xsrf"})
"""`tokens` names credentials alone or after one of these (`access_tokens`); `max_tokens`, `input_tokens` count."""
_MEASURES: Final = frozenset({"count", "counts", "limit", "limits", "budget", "usage", "size", "length", "type",
                              "types", "ttl", "timeout", "expiry", "expires", "name", "names"})
"""A last word part that makes the key a fact about a secret, not the secret: `token_count`, `session_ttl`,
`SharedAccessKeyName` (Azure's name for the key, next to `SharedAccessKey`)."""
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
    if parts[-1] == "tokens" and (len(parts) == 1 or parts[-2] in _TOKEN_QUALIFIERS):
        return True
    return any(index > 0 and ((part in ("key", "keys") and parts[index - 1] in _KEY_QUALIFIERS)
                              or (part in ("phrase", "phrases") and parts[index - 1] == "pass"))
               for index, part in enumerate(parts))


is_credential_key: BoundedMemo[str, bool] = BoundedMemo(_names_credential)
"""is_credential_key(key) -> whether the value under `key` is a credential (memoised: keys repeat)."""


def has_credential_key(json_text: str, *, single_quoted: bool = False) -> bool:
    """Whether a key of `json_text` names a credential: JSON as lmscope encodes it (`": ` after each key), or
    compact (`":`), as a user may have written it into a prompt; with `single_quoted`, a Python dict's repr too
    (`': `).

    Splitting at `":` runs at C speed; a regex for JSON keys costs 5-25 µs on a 2 KB prompt. A string value that
    holds `":` yields a bogus key, which can only send the text down the careful path for nothing. A key written
    with a space before its colon (`"password" : ...`) is not looked for: another scan of every captured string
    for a rare style."""
    pieces = json_text.split('":')
    pieces.pop()
    # Each distinct key once: a list of records repeats the same few keys (`rfind` stops at the key's opening quote).
    keys = {piece[piece.rfind('"') + 1:] for piece in pieces}
    if single_quoted:
        pieces = json_text.split("':")
        pieces.pop()
        keys.update(piece[piece.rfind("'") + 1:] for piece in pieces)
    keys -= _PLAIN_KEYS  # at C speed: most keys were seen before
    for key in keys:
        if is_credential_key(key):
            return True
        if len(_PLAIN_KEYS) >= _MAX_PLAIN_KEYS:
            _PLAIN_KEYS.clear()
        _PLAIN_KEYS.add(key)
    return False


_PLAIN_KEYS: Final[set[str]] = set()
"""Keys `has_credential_key` saw name no credential (bounded like a `BoundedMemo`: emptied when full)."""
_MAX_PLAIN_KEYS: Final = 4096


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
    span: Callable[[str, re.Match[str]], tuple[int, int, bool] | None] | None = None
    """Instead of `group` and `check`: (start, end, quote) of the text to redact, which may reach past the match (a
    JSON object under a credential key, up to its closing bracket), or None to keep the match; `quote`: write the
    redaction as a quoted string (it replaces a number, object or list, not a string's content)."""


def _basic_credentials(match: re.Match[str]) -> bool:
    """`Basic dXNlcjpwYXNz` is base64 of `user:pass`; `Basic principles` is English."""
    payload = match.group("secret")
    try:
        return b":" in base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return False


_AUTH_SCHEMES: Final = frozenset({"bearer", "basic", REDACTED.lower()})


def _assigned_credential(text: str, match: re.Match[str]) -> tuple[int, int, bool] | None:
    """`password=...`, `dbPassword=...` but not `max_tokens=...`; `Authorization: <scheme> <credentials>` is left to
    the `authorization` rule, `auth: Bearer <token>` to the `bearer` one."""
    key = match.group("key")
    secret = match.group("secret")
    # `[REDACTED` too: an unquoted value stops at `]`, and an earlier rule may have redacted this one already.
    if is_credential_key(key) and not key.lower().endswith("authorization") \
            and secret.lower() not in _AUTH_SCHEMES and not secret.startswith(REDACTED[:-1]):
        return match.start("secret"), match.end("secret"), False
    return None


_ASSIGNMENT: Final = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{1,64})[\"']?[ \t]{0,3}[:=][ \t]{0,3}"
    r"(?=(?P<quote>[\"'])?(?P<secret>(?(quote)[^\"'\n]{1,512}|[^\s\"',;)}\]]{1,512})))")
"""`password=hunter2`, `clientSecret=abc`, `'api_key': 'abc'` in free text (an exception message, a dict's repr);
keeps the key. Any identifier before `=` or `:`, starting only where a run of identifier characters begins;
`is_credential_key` decides. The value is looked ahead at, not consumed: when the key names no credential, the
search resumes after the `=` (`failed: password=...` is no value of `failed`)."""

_AUTHORIZATION: Final = re.compile(
    r"(?<![A-Za-z0-9])authorization[\"']?[ \t]{0,3}[:=][ \t]{0,3}(?P<quote>[\"'])?"
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9_-]{0,31})[ \t]{1,8})?"
    r"(?P<secret>(?(quote)[^\"'\n]{1,4096}|[^\s\"',;)}\]]{1,4096}))", re.IGNORECASE)
"""An `Authorization:`/`Proxy-Authorization:` header's credentials after its scheme, any case: `Token [REDACTED]`."""
_KNOWN_SCHEMES: Final = frozenset({
    "bearer", "basic", "token", "apikey", "api-key", "key", "digest", "negotiate", "ntlm", "jwt", "dpop", "hoba",
    "mutual", "sso-key", "sharedkey", "sharedkeylite", "aws4-hmac-sha256", "oauth", "otp", "splunk",
})


def _authorization_credentials(match: re.Match[str]) -> bool:
    """In exception text, whatever follows the header name (no scheme: all of it), unless redacted already."""
    return not match.group("secret").startswith(REDACTED[:-1])


def _authorization_with_scheme(match: re.Match[str]) -> bool:
    """In content, only after a scheme that names one: `Authorization: Only admins ...` is prose."""
    scheme = match.group("scheme")
    return scheme is not None and scheme.lower() in _KNOWN_SCHEMES and _authorization_credentials(match)

_URL_KEY_NAMES: Final = frozenset({"key", "sig", "signature"})
"""URL parameters that carry a credential though `key` alone is no credential key in JSON (`?key=` of Google APIs,
signed URLs' `sig=`)."""
_URL_SIGNATURES: Final = frozenset({"sig", "signature"})
"""A parameter ending in these signs the URL: `X-Amz-Signature`, `X-Goog-Signature`."""


def _url_credential(match: re.Match[str]) -> bool:
    """`?key=...`, `&access_token=...`, `#id_token=...`, `&X-Amz-Signature=...`, not `?page=2` or an already
    redacted value."""
    key = match.group("key")
    lowered = key.lower()
    return match.group("secret") != REDACTED and (
        lowered in _URL_KEY_NAMES or lowered.rpartition("-")[2] in _URL_SIGNATURES or is_credential_key(key))


_URL_TOKEN: Final = re.compile(r"(?<=[?&#])(?P<key>[A-Za-z0-9_.-]{1,64})=(?P<secret>[^&#\s\"'<>\\]{1,1024})")
_STRING_BODY: Final = r"(?:[^{q}\\\n]|\\.){{1,4096}}"
"""The inside of a string quoted by `q`, escapes included (`\"`, `\\`, `\n`): a bounded repeat of two disjoint
alternatives."""
_BARE_VALUE: Final = r"(?P<bare>-?[0-9][0-9.eE+-]{0,63}|[\[{])"
"""A number, or the bracket that opens an object or list (redacted up to its closing bracket)."""
_JSON_MEMBER: Final = re.compile(r'"(?P<key>[^"\\\n]{1,128})"[ \t]{0,3}:[ \t]{0,3}'
                                 rf'(?:"(?P<secret>{_STRING_BODY.format(q=chr(34))})"|{_BARE_VALUE})')
"""`"password": "hunter2"` (or a number, object or list) as JSON inside a string: a dict input DSPy wrote into the
prompt as JSON text."""
_REPR_MEMBER: Final = re.compile(r"'(?P<key>[^'\\\n]{1,128})'[ \t]{0,3}:[ \t]{0,3}"
                                 rf"(?:'(?P<secret>{_STRING_BODY.format(q=chr(39))})'"
                                 rf'|"(?P<dsecret>{_STRING_BODY.format(q=chr(34))})"|{_BARE_VALUE})')
"""`'api_key': 'abc'`: a Python dict's repr written into a prompt."""
_MAX_VALUE_CHARS: Final = 16384
_VALUE_TOKEN: Final = re.compile(r"\"(?:[^\"\\\n]|\\.){0,4096}\"?|'(?:[^'\\\n]|\\.){0,4096}'?|[\[\]{}]")
"""What `_bracket_end` counts: brackets, and strings (skipped whole, so a bracket inside one does not count)."""


def _bracket_end(text: str, start: int) -> int:
    """Where the object or list opened at `start` ends (after its closing bracket); its text may be JSON or a Python
    repr. A value not closed within `_MAX_VALUE_CHARS` ends there: all of what was scanned is redacted."""
    limit = min(len(text), start + _MAX_VALUE_CHARS)
    depth = 0
    for token in _VALUE_TOKEN.finditer(text, start, limit):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
        elif bracket in ("]", "}"):
            depth -= 1
            if depth == 0:
                return token.end()
    return limit


def _member_value(text: str, match: re.Match[str]) -> tuple[int, int, bool] | None:
    """The value of a member whose key names a credential: a string's inside, a number, an object or list whole."""
    if not is_credential_key(match.group("key")):
        return None
    groups = match.groupdict()
    for name in ("secret", "dsecret"):
        if groups.get(name) is not None:
            return None if groups[name] == REDACTED else (match.start(name), match.end(name), False)
    start = match.start("bare")
    end = _bracket_end(text, start) if groups["bare"] in ("[", "{") else match.end("bare")
    return start, end, True


def _aws_secret(match: re.Match[str]) -> bool:
    return not match.group("secret").startswith(REDACTED[:-1])


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
    Rule("stripe_key", re.compile(r"(?<![A-Za-z0-9_])[rs]k_(?:live|test)_[A-Za-z0-9]{10,255}"),
         ("sk_live_", "sk_test_", "rk_live_", "rk_test_")),
    Rule("huggingface_token", re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,255}(?![A-Za-z0-9_])"), ("hf_",)),
    Rule("groq_key", re.compile(r"(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{20,255}"), ("gsk_",)),
    # Azure connection strings: `AccountKey=<base64>;`, `SharedAccessKey=<base64>`.
    Rule("azure_key", re.compile(r"(?<![A-Za-z0-9])(?:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{16,1024}"
                                 r"={0,2})", re.IGNORECASE), ("accountkey=", "sharedaccesskey="), lowered=True,
         group="secret"),
    Rule("aws_secret_key", re.compile(r"(?<![A-Za-z0-9])(?:aws_)?secret_access_key[\"']?[ \t]{0,3}[:=][ \t]{0,3}"
                                      r"[\"']?(?P<secret>[A-Za-z0-9/+=]{16,128})", re.IGNORECASE),
         ("secret_access_key",), lowered=True, group="secret", check=_aws_secret),
    # Before `bearer`: `Authorization: Bearer <short token>` too.
    Rule("authorization", _AUTHORIZATION, ("authorization",), lowered=True, group="secret",
         check=_authorization_with_scheme),
    Rule("bearer", re.compile(r"(?<![A-Za-z0-9])(?i:bearer)[ \t]{1,8}(?P<secret>[A-Za-z0-9._~+/=-]{16,4096})"),
         ("bearer",), lowered=True, group="secret"),
    Rule("basic_auth", re.compile(r"(?<![A-Za-z0-9])Basic[ \t]{1,8}(?P<secret>[A-Za-z0-9+/]{4,1024}={0,2})"
                                  r"(?![A-Za-z0-9+/=])"), ("Basic",), group="secret", check=_basic_credentials),
    # The password runs to the authority's last `@`: `https://bob:p@ss@host`.
    Rule("url_userinfo", re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://"
                                    r"(?P<secret>[^\s/?#@:\"'<>]{0,256}:[^\s/?#\"'<>]{0,256})@"),
         ("://",), group="secret"),
    # A query or fragment parameter that names a credential: `?key=...` (Google), `&token=`, `#access_token=`.
    Rule("url_token", _URL_TOKEN, ("?", "#", "&"), group="secret", check=_url_credential),
    # JSON in text (a dict in a prompt): the value of a member whose key names a credential.
    Rule("json_member", _JSON_MEMBER, ('":', '" :'), span=_member_value),
    Rule("repr_member", _REPR_MEMBER, ("':", "' :"), span=_member_value),
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
_HOST_USERINFO: Final = re.compile(r"(?<![^\s/?#\"'<>()\[\]])(?P<user>[^\s/?#@:\"'<>()\[\]]{1,256})"
                                   rf":(?P<secret>[^\s/?#\"'<>]{{1,256}})@(?={_HOST})")
"""`alice:pw@127.0.0.1:9` with no scheme in front: how an HTTP client's connection error names the host it tried
(DSPy's native engine: `failed to connect to alice:pw@host`). Starts only after a space, quote, bracket or `/?#`
(not after `:` or `@`, which the password may hold); the password runs to the last `@` before a host
(`alice:p@ss:w@host`)."""


def _host_password(match: re.Match[str]) -> bool:
    """Not redacted already (a URL rule came first), and not an e-mail address after `mailto:`."""
    return match.group("secret") != REDACTED and match.group("user").lower() != "mailto"


FREE_TEXT_RULES: Final[tuple[Rule, ...]] = (
    *SHAPE_RULES,
    Rule("authorization_header", _AUTHORIZATION, ("authorization",), lowered=True, group="secret",
         check=_authorization_credentials),
    Rule("credential_assignment", _ASSIGNMENT,
         ("passw", "phrase", "pwd", "secret", "token", "cookie", "session", "credential", "auth", "key", "jwt",
          "srf", "bearer"),
         lowered=True, span=_assigned_credential),
    Rule("host_userinfo", _HOST_USERINFO, ("@",), group="secret", check=_host_password),
)
"""Exception messages and tracebacks also quote `password=...` and `user:pass@host`: looked for there only (rare
and short), not in every prompt and document, where triggers like `key`, `token` and `@` would cost every span a
regex pass."""

# --- binary --------------------------------------------------------------------------------------------------
MIN_BLOB_CHARS: Final = 1024
_B64: Final = r"[A-Za-z0-9+/_-]"
"""A base64 character, standard or URL-safe alphabet."""
_B64_LINE: Final = rf"{_B64}{{64}}(?:{_B64}{{12}})?\r?\n"
"""A full line of line-wrapped base64: 76 characters (MIME, `base64.encodebytes`) or 64 (PEM), then a line break."""
_B64_LAST_LINE: Final = rf"(?:[A-Za-z0-9+/_]{_B64}*)?={{0,2}}"
"""The last, shorter line of wrapped base64 outside a data URL; not starting with `-`, which is more likely PEM's
`-----END ...`."""
_DATA_URL: Final = re.compile(r"(?i:data):(?P<mime>[A-Za-z]{1,32}/[A-Za-z0-9.+-]{1,64})?"
                              r"(?:;[A-Za-z0-9=.+_-]{1,64}){0,8};(?i:base64),"
                              rf"(?P<payload>(?:{_B64_LINE})*{_B64}*={{0,2}})")
_BASE64_RUN: Final = re.compile(rf"(?<![A-Za-z0-9+/=_-])(?:(?:{_B64_LINE}){{2,}}{_B64_LAST_LINE}"
                                rf"|{_B64}{{{MIN_BLOB_CHARS},}}={{0,2}})")
"""A run this long without a space (or lines of base64 this long in all) is an encoded blob, not prose; shorter
ones (hashes, ids) stay."""
_MIN_DATA_URL_PAYLOAD: Final = 16


def _describe_data_url(match: re.Match[str]) -> str:
    payload = match.group("payload").rstrip("\r\n")
    if len(payload) < _MIN_DATA_URL_PAYLOAD:
        return match.group(0)
    described = describe_base64(payload, (match.group("mime") or "").lower() or None)
    # A line break that ended the last full line stays: it separates what follows.
    return match.group(0) if described is None else described + match.group("payload")[len(payload):]


def _describe_blob(match: re.Match[str]) -> str:
    blob = match.group(0).rstrip("\r\n")
    if len(blob) < MIN_BLOB_CHARS:  # a few wrapped lines
        return match.group(0)
    described = _described_hex(blob) or describe_base64(blob)
    return match.group(0) if described is None else described + match.group(0)[len(blob):]


def _described_hex(blob: str) -> str | None:
    """The description of `blob` read as hex (bytes a tool printed with `.hex()`, wrapped or not), or None if it is not
    hex. Hex digits are base64 characters too, so a hex run would otherwise be described by a base64 decoding of it:
    the wrong size and hash. Base64 of this length is all hex digits only for degenerate bytes, and then lacks what
    hex of any real bytes has: a decimal digit, and letters of one case (zeros are `AAAA...` in base64)."""
    if _HAS_DIGIT.search(blob) is not None and (_HAS_LOWER.search(blob) is None or _HAS_UPPER.search(blob) is None):
        try:
            return describe_bytes(bytes.fromhex(blob))  # skips whitespace; any other character raises at C speed
        except ValueError:
            pass
    return None


_HAS_DIGIT: Final = re.compile("[0-9]")
_HAS_LOWER: Final = re.compile("[a-f]")
_HAS_UPPER: Final = re.compile("[A-F]")


# --- pre-checks ----------------------------------------------------------------------------------------------
_RUN_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/=-"
_SKELETON: Final = bytes(ord("a") if byte in _RUN_CHARS else ord("\n") if byte in b"\r\n" else byte if byte == ord(":")
                         else ord("q") if byte == ord('"') else ord("p") if byte == ord("'") else ord(" ")
                         for byte in range(256))
_SHAPE_RUN: Final = b"a" * 16
"""Every shape but `Basic` and `user:pass@` holds 16 key characters in a row (`sk-` and 20 more, ...)."""
_BLOB_RUN: Final = b"a" * MIN_BLOB_CHARS
_LINE_RUN: Final = b"a" * 64
"""Every blob holds one: a line of wrapped base64 (`_B64_LINE`) or a part of a 1024-character run."""
_WRAPPED_RUNS: Final = (b"a" * 64 + b"\n" + b"a" * 64, b"a" * 64 + b"\n\n" + b"a" * 64)
"""Two lines of line-wrapped base64, LF or CRLF (`\n\n` in a skeleton)."""


def _has_blob(skeleton: bytes) -> bool:
    # The 64-character run first: one scan of the common string, which has none.
    return _LINE_RUN in skeleton and (_BLOB_RUN in skeleton or any(run in skeleton for run in _WRAPPED_RUNS))


_KEY_END: Final = re.compile(rb":(?<=[pq]:)")
"""In a skeleton, the end of a JSON key (`":`) or of a Python dict's (`':`). A search for `:` then a look back:
~0.4 ns a byte, where `'":' in text` costs 1 ns a character."""
_SINGLE_QUOTED_KEY_END: Final = re.compile(rb":(?<=p:)")
_BASIC: Final = re.compile("Basic ")
"""`in` with this needle costs ~50% more than the regex search."""


def _skeleton(text: str) -> bytes:
    """`text` as bytes, key and base64 characters as `a`, line breaks as `\n`, `:` kept, `"` as `q`, `'` as `p` and
    the rest as spaces, so runs are found with `in`.

    `bytes.translate` and `in` run at C speed (~2 µs for a 2 KB prompt); a regex scan costs ~10 ns a character."""
    return text.encode("utf-8", "surrogatepass").translate(_SKELETON)


def describe_binary(text: str) -> str:
    """`text` with data URLs and long base64 runs replaced by their description (`_binary.describe_bytes`)."""
    if ";base64," in text or ";BASE64," in text:
        text = _DATA_URL.sub(_describe_data_url, text)
    if len(text) >= MIN_BLOB_CHARS and _has_blob(_skeleton(text)):
        text = _BASE64_RUN.sub(_describe_blob, text)
    return text


def may_hold(text: str, *, secrets: bool, is_json: bool) -> bool:
    """False when `text` certainly holds no binary (and, with `secrets`, no credential): the common case, cheap."""
    skeleton = _skeleton(text)
    if not secrets:
        # (`;BASE64,` only in `describe_binary`: one more scan of every string for a data URL under 1024 characters)
        return ";base64," in text or _has_blob(skeleton)
    # A 16-character run also covers every data URL and blob worth describing (payloads under 16 are kept).
    # `Authorization: Token <short>` (no 16-character run); not `AUTHORIZATION`, one more scan of every string.
    if _SHAPE_RUN in skeleton or _BASIC.search(text) is not None or ("@" in text and "://" in text) \
            or "ookie:" in text or "uthorization" in text:
        return True
    if "=" in text and ("?" in text or "#" in text or "&" in text) and _URL_TOKEN.search(text) is not None:
        return True
    # JSON, or JSON or a dict's repr written into text.
    if not is_json and _KEY_END.search(skeleton) is None:
        return False
    quote = skeleton.find(b"p")  # `'`: rarer than `"` in JSON, and found at C speed
    return has_credential_key(
        text, single_quoted=quote >= 0 and _SINGLE_QUOTED_KEY_END.search(skeleton, quote) is not None)
