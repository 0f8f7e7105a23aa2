"""Text from a trace made safe for a terminal: every control character shown, none obeyed.

Span names, models, attribute values and error messages come from the program, its LM, or a file someone else
wrote. Printed raw, an ESC starts a terminal escape sequence (clear the screen, set the window title, write the
clipboard through OSC 52), and a newline or carriage return forges tree rows. Every text view (the console tree,
`lmscope tree`, `lmscope report`, the CLI's messages) passes such text through `printable` before it adds its
own newlines and colour codes, so those are the only control characters it writes.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Format characters that reorder or break lines on screen: bidirectional overrides and isolates (the
# "Trojan Source" characters), and Unicode's own line and paragraph separators.
_INVISIBLE_BREAKERS = ("\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)))


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# C0 (0x00-0x1f), DEL and C1 (0x80-0x9f: 0x9b alone is a CSI in some terminals) are Unicode category Cc.
# Lone surrogates (a "\ud800" in a file's JSON, a non-UTF-8 file name from argv) cannot be encoded at all:
# printed raw they end the program with UnicodeEncodeError.
_TABLE: dict[int, str] = {
    ord(char): _escape(char)
    for char in (*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *_INVISIBLE_BREAKERS,
                 *map(chr, range(0xD800, 0xE000)))
}
# A backslash is left as it is: escaping it would double every Windows path and regex, and a literal `\x1b`
# in a name can at worst look like an escaped ESC, never act as one.


def printable(text: object, max_chars: int | None = None) -> str:
    """`text` (or `str(text)`) with each control character written out as `\\x1b`, `\\n`, `\\u202e` ...;
    cut to `max_chars` (ending in "…") when given: a column is as wide as its widest cell, so one huge name
    would otherwise pad every row of a table to its width."""
    shown = str(text).translate(_TABLE)
    return shown if max_chars is None or len(shown) <= max_chars else shown[: max_chars - 1] + "…"
