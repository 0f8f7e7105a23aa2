"""LiteLLM's functions an app bound by name before lmscope patched them (`from litellm import completion`, then
`lmscope.instrument()`): calls through those names reach LiteLLM's own function, untraced, and `track()` counts none
of them. lmscope patches the package attributes (`litellm.completion`) and cannot reach such a name, so it says so
once, naming each one and what to do.

Looked for once, right after the patch, in the globals of every loaded module but LiteLLM's own: one C-speed set
test per module (~6 ms over the ~3,800 modules of a DSPy and LiteLLM app). When lmscope patches LiteLLM as the app
imports it (`instrument()` first, or `lmscope run`) no module can hold such a name yet.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("lmscope")


def warn_names_bound_before(originals: Mapping[str, Any]) -> None:
    """Warn once if a loaded module outside LiteLLM holds one of `originals` (name -> LiteLLM's function)."""
    found = _bound_names(originals)
    if found:
        logger.warning("lmscope: %s bound LiteLLM's functions by name before lmscope.instrument(): their calls are "
                       "not traced. Call lmscope.instrument() before `from litellm import ...`, or call them as "
                       "litellm.<name>(...), or start the app with `lmscope run`", ", ".join(found))


def _bound_names(originals: Mapping[str, Any]) -> list[str]:
    """`module.name` for each global of a loaded module (not LiteLLM's) that is one of `originals`."""
    wanted = {id(function) for function in originals.values()}  # ids of live objects: `originals` holds them
    found: list[str] = []
    seen: set[int] = set()  # a module under two names once (multiprocessing's `__mp_main__` is `__main__`)
    for module_name, module in list(sys.modules.items()):
        fields = getattr(module, "__dict__", None)
        if type(fields) is not dict or module_name == "litellm" or module_name.startswith("litellm.") \
                or id(module) in seen:
            continue
        seen.add(id(module))
        if wanted.isdisjoint(map(id, list(fields.values()))):
            continue
        found.extend(f"{module_name}.{name}" for name, value in list(fields.items()) if id(value) in wanted)
    return found
