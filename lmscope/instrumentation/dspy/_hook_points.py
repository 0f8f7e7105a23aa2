"""Where lmscope hooks into each DSPy 3 release, and what is left untraced where a hook cannot be found.

A hook point is one thing lmscope traces (LM call results, the JSON-adapter fallback, MIPROv2's trials ...) and the
ways of reaching it, newest release first: a hook that moved between releases is one more way in the same place,
not an `if version` in a wrapper. Installing tries each way until one finds all its targets. A way that fails part
way through puts back what it had already patched, so no hook point is ever left half-patched; a hook point with
no way left goes untraced, and the rest of DSPy is traced all the same.

The releases lmscope is tested with are DSPy 3.0 to 3.4 (`package.py`, CI's matrix, docs/dspy-internals.md §13).
A hook point may say it first exists in a later release (`since`): older releases lack it quietly (the README's
version table says so). Anything else missing, or a DSPy newer than the newest tested release, is said once, in
one warning naming the version and what goes untraced.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._patching import Patcher

logger = logging.getLogger("lmscope")

OLDEST_TESTED = (3, 0)
NEWEST_TESTED = (3, 4)

Way = Callable[[], None]
"""Imports its targets and patches them through the instrumentor's Patcher; ImportError or AttributeError (what
`getattr` on a missing target raises): this release has not got them."""


@dataclass(frozen=True)
class HookPoint:
    traces: str
    """What goes untraced without it, in the words of the warning."""
    ways: Sequence[Way]
    since: tuple[int, int] = OLDEST_TESTED
    """The first DSPy minor release that has it: older ones lack it without a warning."""


def install(points: Sequence[HookPoint], patcher: Patcher, version: tuple[int, int] | None) -> list[str]:
    """Installs every hook point this DSPy has; returns what was expected here and could not be found."""
    untraced: list[str] = []
    for point in points:
        if version is not None and version < point.since:
            continue
        if not any(_installed(way, patcher) for way in point.ways):
            untraced.append(point.traces)
    return untraced


def _installed(way: Way, patcher: Patcher) -> bool:
    mark = patcher.mark()
    try:
        way()
    except (ImportError, AttributeError):
        patcher.restore_to(mark)  # a way that found some of its targets only: none of it stays
        return False
    return True


def dspy_version() -> tuple[int, int] | None:
    """(major, minor) of the installed DSPy, or None when its metadata cannot be read."""
    try:
        text = importlib.metadata.version("dspy")
    except importlib.metadata.PackageNotFoundError:
        import dspy

        text = str(getattr(dspy, "__version__", ""))
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


_warned: set[tuple[tuple[int, int] | None, tuple[str, ...]]] = set()


def warn_once(version: tuple[int, int] | None, untraced: Sequence[str]) -> None:
    """One WARNING per process and situation: a DSPy outside the tested releases, or hook points not found."""
    untested = version is None or not OLDEST_TESTED <= version <= NEWEST_TESTED
    if not untraced and not untested:
        return
    key = (version, tuple(untraced))
    if key in _warned:
        return
    _warned.add(key)
    shown = "unknown" if version is None else f"{version[0]}.{version[1]}"
    tested = f"{OLDEST_TESTED[0]}.{OLDEST_TESTED[1]} to {NEWEST_TESTED[0]}.{NEWEST_TESTED[1]}"
    found = "untraced: " + "; ".join(untraced) if untraced else "every hook point was found"
    if untested:
        logger.warning("lmscope: DSPy %s is outside the releases lmscope is tested with (%s); traced what could be "
                       "found, %s", shown, tested, found)
    else:
        logger.warning("lmscope: DSPy %s: %s", shown, found)
