"""`ScrubMatch`, the argument of `scrub_callback`: its own small module, so `import lmscope` compiles no pattern."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Path = tuple["str | int", ...]


@dataclass(frozen=True)
class ScrubMatch:
    """What `scrub_callback` is asked about: one value lmscope is about to redact.

    `path`: the attribute key, then the keys and list indexes down to the value
    (`("input.value", "config", "api_key")`). `value`: the whole value under a credential key, or the matched
    text inside a string. `pattern_match`: the match that fired, on the key for a key match, on the string for a
    shape match. The callback returns the value to record instead, or None to redact it.
    """

    path: Path
    value: Any
    pattern_match: re.Match[str]


ScrubCallback = Callable[[ScrubMatch], Any]
