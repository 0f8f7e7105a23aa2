"""Scrubbing: credentials out of captured content, binary data described instead of copied.

Two passes over a copy of the content, never over the program's own objects (`_scrub_rules.py` says what
matches):
- by key: in a JSON structure, the whole value under a key that names a credential (`api_key`, `password`,
  `accessToken`, `Set-Cookie`, ...) becomes `[REDACTED]`;
- by shape: inside every string, text shaped like a credential (provider keys `sk-...`, AWS `AKIA...`, GitHub
  `ghp_...`, Google `AIza...`, `Bearer`/`Basic` values, `scheme://user:pass@host`, JWTs) becomes `[REDACTED]`,
  and data URLs and long base64 runs become a description (`_binary.py`).

Cost: content is scrubbed once per span on the program's thread, so the common case, no secret at all, is a few
C-speed checks (`_scrub_rules.may_hold`) that return the string untouched. Only a string that may hold something
is decoded, walked and encoded again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ._internal_errors import report_internal_error
from ._scrub_match import Path, ScrubCallback, ScrubMatch
from ._scrub_rules import (
    FREE_TEXT_RULES,
    KEY_WORD,
    REDACTED,
    SHAPE_RULES,
    Rule,
    describe_binary,
    is_credential_key,
    may_hold,
)
from ._url_masking import mask_urls_in


class _Found:
    """Whether a scrub redacted anything (binary descriptions do not count): the span then says so."""

    __slots__ = ("redacted",)

    def __init__(self) -> None:
        self.redacted = False


class Scrubber:
    """Credentials and binary out of captured content. Built once at `instrument()` from the options.

    `secrets=False` (the `scrub=False` option) keeps credentials but still describes binary data: binary content
    is never copied, whatever the options say. `patterns`: extra regexes (compiled here, once), matched against
    keys (the whole value is redacted) and inside strings (the matched text is). `callback` may keep a value.
    """

    def __init__(self, *, secrets: bool = True, patterns: Sequence[str] = (),
                 callback: ScrubCallback | None = None) -> None:
        self.secrets = secrets
        self.patterns = tuple(re.compile(pattern) for pattern in patterns) if secrets else ()
        self.callback = callback if secrets else None

    def json(self, text: str, key: str) -> tuple[str, bool]:
        """(scrubbed JSON text, whether a credential was redacted) for the JSON `text` of attribute `key`.

        `patterns` are tried on the decoded keys and strings, not on the JSON text, where a newline is `\\n` and a
        string's start is a quote: a user's `ACCT:\\s+\\d{8}` or `^\\d{8}$` must match as it would in the value."""
        built_in = may_hold(text, secrets=self.secrets, is_json=True)
        if not built_in and not self.patterns:
            return text, False
        try:
            value = json.loads(text)
        except ValueError:  # not JSON after all: scrub it as text
            return self.text(text, key)
        if not built_in and not self._patterns_in(value):
            return text, False
        found = _Found()
        scrubbed = self._walk(value, (key,), found)
        return json.dumps(scrubbed, ensure_ascii=False, default=str), found.redacted

    def text(self, text: str, key: str, *, free_text: bool = False) -> tuple[str, bool]:
        """(scrubbed `text`, whether a credential was redacted) for a plain string attribute `key`.

        `free_text`: an exception message or traceback, where `password=...` is looked for too."""
        if not free_text and not self._may_hold(text, False):
            return text, False
        found = _Found()
        return self._string(text, (key,), found, FREE_TEXT_RULES if free_text else SHAPE_RULES), found.redacted

    def _may_hold(self, text: str, is_json: bool) -> bool:
        if self.patterns and any(pattern.search(text) is not None for pattern in self.patterns):
            return True
        return may_hold(text, secrets=self.secrets, is_json=is_json)

    def _patterns_in(self, value: Any) -> bool:
        """Whether a `patterns` regex matches a key or a string of the decoded JSON `value`."""
        kind = type(value)
        if kind is str:
            return any(pattern.search(value) is not None for pattern in self.patterns)
        if kind is list:
            return any(self._patterns_in(item) for item in value)
        if kind is dict:
            return any(self._patterns_in(key) or self._patterns_in(item) for key, item in value.items())
        return False

    def _walk(self, value: Any, path: Path, found: _Found) -> Any:
        kind = type(value)
        if kind is str:
            return self._string(value, path, found, SHAPE_RULES)
        if kind is list:
            return [self._walk(item, (*path, index), found) for index, item in enumerate(value)]
        if kind is not dict:
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            where = (*path, key)
            # True, False and None carry no secret: `{"use_auth": true}` stays readable.
            match = self._credential_key(key) if item is not None and type(item) is not bool else None
            out[key] = self._walk(item, where, found) if match is None else self._redact(where, item, match, found)
        return out

    def _credential_key(self, key: str) -> re.Match[str] | None:
        if not self.secrets:
            return None
        if is_credential_key(key):
            return KEY_WORD.search(key) or re.match(".*", key)
        for pattern in self.patterns:
            match = pattern.search(key)
            if match is not None:
                return match
        return None

    def _string(self, text: str, path: Path, found: _Found, rules: tuple[Rule, ...]) -> str:
        text = describe_binary(text)
        if not self.secrets:
            return text
        lowered = text.lower()
        for rule in rules:
            seen = lowered if rule.lowered else text
            if any(trigger in seen for trigger in rule.triggers):
                text = rule.pattern.sub(_Replace(self, rule, path, found), text) if rule.span is None \
                    else self._sub_spans(rule, text, path, found)
        for pattern in self.patterns:
            text = pattern.sub(_Replace(self, None, path, found), text)
        return text

    def _sub_spans(self, rule: Rule, text: str, path: Path, found: _Found) -> str:
        """`rule.pattern.sub` for a rule whose redaction may reach past its match: the search resumes after it, so
        the text redacted is never scanned again."""
        assert rule.span is not None
        parts: list[str] = []
        done = 0
        match = rule.pattern.search(text)
        while match is not None:
            span = rule.span(text, match)
            if span is None:
                match = rule.pattern.search(text, match.end())
                continue
            start, end, quote = span
            kept = self._redact(path, text[start:end], match, found)
            parts.append(text[done:start])
            parts.append(f'"{kept}"' if quote and kept == REDACTED else str(kept))
            done = end
            match = rule.pattern.search(text, max(end, match.end()))
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _redact(self, path: Path, value: Any, match: re.Match[str], found: _Found) -> Any:
        if self.callback is not None:
            try:
                kept = self.callback(ScrubMatch(path, value, match))
            except Exception as exc:  # noqa: BLE001 - a failing callback redacts: the safe side
                report_internal_error("scrub_callback", exc)
                kept = None
            if kept is not None:
                return kept
        found.redacted = True
        return REDACTED


class _Replace:
    """`re.sub` replacement for one rule (None: a `scrub_patterns` regex, whose whole match is redacted)."""

    __slots__ = ("found", "path", "rule", "scrubber")

    def __init__(self, scrubber: Scrubber, rule: Rule | None, path: Path, found: _Found) -> None:
        self.scrubber, self.rule, self.path, self.found = scrubber, rule, path, found

    def __call__(self, match: re.Match[str]) -> str:
        rule = self.rule
        whole = match.group(0)
        if rule is not None and rule.check is not None and not rule.check(match):
            return whole
        group = rule.group if rule is not None else None
        start = 0 if group is None else match.start(group) - match.start()
        secret = whole if group is None else match.group(group)
        kept = self.scrubber._redact(self.path, secret, match, self.found)
        return whole[:start] + str(kept) + whole[start + len(secret):]


_ALWAYS = Scrubber()


def scrub_credentials(text: str) -> str:
    """Free text with credentials redacted (shapes and `password=...`), whatever the scrub options say."""
    return _ALWAYS.text(text, "error", free_text=True)[0]


def scrub_error_text(text: str) -> str:
    """Error text lmscope shows or logs (a status, an exception, an exporter's reason): credentials redacted and
    every URL's userinfo, query and fragment masked, whatever the scrub options say. Error text is not captured
    content: it is shown whatever `capture_content` says, so it must never carry a secret."""
    return mask_urls_in(scrub_credentials(text))
