"""Other instrumentations of the libraries lmscope traces: found by the marks they leave, named once in a warning.

lmscope keeps tracing whatever else runs (`_patching.py` layers its wrappers beneath other tools' patches) and
counts only its own LM spans, but each call then also shows as the other tool's spans, which a user should hear
about once, by name, with how to turn it off. What each library's instrumentation looks at is its own
(`dspy/_neighbours.py`, `litellm/_neighbours.py`); the warning once per tool, and telling OpenInference's patches
from Logfire's (which are OpenInference's, run by Logfire), are here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ._foreign_patches import patch_chain

logger = logging.getLogger("lmscope")

OPENINFERENCE = "openinference"
LOGFIRE = "logfire"

_told: set[str] = set()
"""The tools already named in a warning: once per process each."""


def warn_once(tool: str, message: str) -> None:
    """Log `message` unless a warning about `tool` was logged before in this process."""
    if tool not in _told:
        _told.add(tool)
        logger.warning(message)


def openinference_patchers(values: Iterable[tuple[Any, str]]) -> list[str]:
    """OPENINFERENCE or LOGFIRE for each of them whose patches are among `values` ((installed object, its name))."""
    found: list[str] = []
    for value, name in values:
        for patch in patch_chain(value, name):
            tool = _openinference_tool(getattr(patch, "_self_wrapper", None) or getattr(patch, "__self__", None))
            if tool is not None and tool not in found:
                found.append(tool)
    return found


def _openinference_tool(hook: Any) -> str | None:
    """The tool behind an OpenInference patch's hook (a wrapt wrapper's hook object, or the instrumentor whose bound
    method the patch is); Logfire's are OpenInference's with a tracer of Logfire's."""
    if not type(hook).__module__.startswith("openinference."):
        return None
    # The tracer it holds (an OITracer, a wrapt proxy) wraps Logfire's when `logfire.instrument_*()` set it up.
    for held in vars(hook).values():
        if type(getattr(held, "__wrapped__", held)).__module__.startswith("logfire."):
            return LOGFIRE
    return OPENINFERENCE
