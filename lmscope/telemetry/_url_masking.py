"""Hide the parts of URLs where people put tokens (userinfo, query, fragment), in time linear in the text.

These run on text lmscope does not control (exporter error messages, endpoints from configuration), on the app's
thread and under the GIL, so a quadratic regex over a 100,000-character message would freeze the app: every scan
here moves forward only, and patterns never retry from each position.
"""

from __future__ import annotations

import re

_MASK = "***"
_AUTHORITY_END = "/?#"
_URL_BODY = re.compile(r"[^\s'\"()<>]*")  # matched at one position only: linear in what it consumes
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_MAX_SCHEME = 32


def mask_url(url: str) -> str:
    """`https://user:pw@host/path?key=x#t` -> `https://***@host/path?***`: userinfo, query and fragment hidden."""
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    authority_end = len(url)
    for char in _AUTHORITY_END:
        found = url.find(char, start)
        if found >= 0:
            authority_end = min(authority_end, found)
    at = url.rfind("@", start, authority_end)
    if at >= 0:
        url = f"{url[:start]}{_MASK}{url[at:]}"
        authority_end -= at - start - len(_MASK)
    cut = min((found for found in (url.find("?", authority_end), url.find("#", authority_end)) if found >= 0),
              default=-1)
    return url if cut < 0 else f"{url[:cut]}?{_MASK}"


def mask_urls_in(text: str) -> str:
    """`text` with every `scheme://...` in it passed through `mask_url`."""
    parts: list[str] = []
    done = 0
    position = text.find("://")
    while position >= 0:
        begin = position
        while begin > done and position - begin < _MAX_SCHEME and text[begin - 1] in _SCHEME_CHARS:
            begin -= 1
        body = _URL_BODY.match(text, position + 3)
        end = body.end() if body else position + 3
        if begin < position and text[begin].isalpha():
            parts.append(text[done:begin])
            parts.append(mask_url(text[begin:end]))
            done = end
        position = text.find("://", max(end, position + 3))
    parts.append(text[done:])
    return "".join(parts)
