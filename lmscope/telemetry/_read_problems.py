"""What went wrong while reading a trace file, as the few human lines `lmscope tree` / `report` print.

A trace file may be cut short by a full disk, appended to by two processes at once, or written by another
producer: the readers skip what they cannot use and say so here, one line per problem, naming the file and
the line, instead of stopping at the first bad byte. Lines that are not JSON at all are only counted and listed
in one summary line. Both are bounded, so a file of a million bad lines costs a few kilobytes to describe.
"""

from __future__ import annotations

from ._printable import printable

MAX_MESSAGES = 20
"""Problem lines printed at most; the rest are counted in one closing line."""
MAX_LINE_NUMBERS = 10
"""Unreadable line numbers listed at most in the summary line."""


class ReadProblems:
    def __init__(self, source: str) -> None:
        self.source = printable(source)
        """The file as the user named it, made safe to print."""
        self.spans_read = 0
        self._messages: list[str] = []
        self._more_messages = 0
        self._unreadable: list[int] = []
        self._unreadable_count = 0

    @property
    def found(self) -> bool:
        return bool(self._messages or self._unreadable_count)

    def add(self, line: int, text: str) -> None:
        """One malformed thing on `line` that was skipped or read as a default (`text` says which)."""
        if len(self._messages) < MAX_MESSAGES:
            self._messages.append(f"{self.source} line {line}: {printable(text)}")
        else:
            self._more_messages += 1

    def unreadable(self, line: int) -> None:
        """A line that is not JSON (cut short, garbled): skipped whole."""
        self._unreadable_count += 1
        if len(self._unreadable) < MAX_LINE_NUMBERS:
            self._unreadable.append(line)

    def lines(self) -> list[str]:
        """What to print, one problem per line."""
        lines = list(self._messages)
        if self._more_messages:
            lines.append(f"{self.source}: {self._more_messages:,} more problems not shown")
        if self._unreadable_count:
            numbers = ", ".join(map(str, self._unreadable))
            more = ", …" if self._unreadable_count > len(self._unreadable) else ""
            noun = "line" if self._unreadable_count == 1 else "lines"
            lines.append(f"{self.source}: skipped {self._unreadable_count:,} unreadable {noun} ({numbers}{more})")
        return lines
