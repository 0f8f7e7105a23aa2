"""`lmscope tree FILE` and `lmscope report FILE [--html OUT]`: read a trace file, print what it holds.

Exit codes (README "Read a trace file"): 0 when the file was read, even if some lines or spans had to be
skipped (each one is named on stderr); 1 when the file cannot be opened (missing, a directory, no permission),
when it has content but not one span could be read from it, or when the HTML page cannot be written.
The file is streamed: `report` keeps running totals, `tree` keeps only the traces still open. When the reader of
the output goes away (`lmscope tree FILE | head`), `tree` stops there, quietly, and `report` still writes its
`--html` page; the exit code is what it would have been.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from .telemetry._printable import printable
from .telemetry._read_problems import ReadProblems

EXIT_READ = 0
EXIT_UNREADABLE = 1


def tree(path: str) -> int:
    from .telemetry._trace_file import iter_trace_file
    from .telemetry._trace_stream import stream_trees
    from .telemetry._tree import render_tree

    problems = ReadProblems(path)
    try:
        for trace in stream_trees(iter_trace_file(path, problems), problems):
            print(render_tree(trace))
    except BrokenPipeError:
        _reader_gone()
    except OSError as exc:
        return _cannot_open("tree", path, exc)
    return _finish("tree", path, problems)


def report(path: str, html: str | None) -> int:
    from .telemetry._report import render_report
    from .telemetry._report_html import render_html
    from .telemetry._report_page import gather_page
    from .telemetry._trace_file import iter_trace_file

    problems = ReadProblems(path)
    try:
        # Without --html no tree is kept: the totals are summed as the file streams by.
        page = gather_page(iter_trace_file(path, problems), source=Path(path).name, problems=problems,
                           **({} if html else {"max_traces": 0}))
    except OSError as exc:
        return _cannot_open("report", path, exc)
    try:
        print(render_report(page.report), flush=True)
    except BrokenPipeError:
        _reader_gone()  # the summary's reader left; the problems, the status and the HTML page are still owed
    status = _finish("report", path, problems)
    if html:
        try:
            # backslashreplace: a lone surrogate in span text ("\ud800" in the file's JSON) cannot be UTF-8.
            Path(html).write_text(render_html(page), encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            print(f"lmscope report: cannot write {printable(html)}: {_reason(exc)}", file=sys.stderr)
            return EXIT_UNREADABLE
        print(f"HTML report: {printable(html)}", file=sys.stderr)
    return status


def _finish(command: str, path: str, problems: ReadProblems) -> int:
    for line in problems.lines():
        print(line, file=sys.stderr)
    if problems.found and not problems.spans_read:
        print(f"lmscope {command}: no span could be read from {printable(path)}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_READ


def _reader_gone() -> None:
    """Stdout's reader closed the pipe: stop printing. Stdout now points at /dev/null, so later prints and the
    interpreter's own flush at exit find nowhere to fail (what Python's documentation advises for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _cannot_open(command: str, path: str, exc: OSError) -> int:
    print(f"lmscope {command}: cannot read {printable(path)}: {_reason(exc)}", file=sys.stderr)
    return EXIT_UNREADABLE


def _reason(exc: OSError) -> str:
    """`no such file or directory`, not `[Errno 2] No such file or directory: '...'`."""
    if exc.errno == errno.EISDIR:
        return "it is a directory, not a trace file"
    return printable((exc.strerror or type(exc).__name__).lower())
