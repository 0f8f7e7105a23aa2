"""The installed DSPy release: its engines, the `dspy.LM` options that pick one, and tests of what it lacks.

DSPy 3.4 added the native HTTP engine (the default) beside LiteLLM (`engine="litellm"`); DSPy 3.0-3.3 talk to
providers through LiteLLM only, and their `dspy.LM` would send an `engine=` keyword on to the provider. Read from the
package metadata, so collecting a test does not import DSPy."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import pytest

_match = re.match(r"(\d+)\.(\d+)", importlib.metadata.version("dspy"))
assert _match is not None, "DSPy's version is not major.minor..."
DSPY_VERSION = (int(_match.group(1)), int(_match.group(2)))
HAS_ENGINES = DSPY_VERSION >= (3, 4)
ENGINES = ("native", "litellm") if HAS_ENGINES else ("litellm",)
"""Every engine this DSPy has, its default first."""
DEFAULT_ENGINE = ENGINES[0]


def engine_options(engine: str) -> dict[str, Any]:
    """The `dspy.LM` keywords that select `engine` on this DSPy (none for its default)."""
    if engine not in ENGINES:
        raise ValueError(f"DSPy {DSPY_VERSION[0]}.{DSPY_VERSION[1]} has no {engine!r} engine")
    return {"engine": "litellm"} if HAS_ENGINES and engine == "litellm" else {}


def needs_dspy(version: tuple[int, int], what: str) -> pytest.MarkDecorator:
    """For a test of `what`, which DSPy releases before `version` do not have (the README's version table)."""
    return pytest.mark.skipif(version > DSPY_VERSION,
                              reason=f"DSPy {version[0]}.{version[1]} added {what}; this is {DSPY_VERSION[0]}.{DSPY_VERSION[1]}")


def lm_result_hook() -> tuple[Any, str]:
    """(owner, name) of what lmscope wraps to read each LM call's result: `execution.finalize` (3.4), else
    `BaseLM._process_lm_response`."""
    if HAS_ENGINES:
        from dspy.clients import execution

        return execution, "finalize"
    from dspy.clients.base_lm import BaseLM

    return BaseLM, "_process_lm_response"


def lm_request_hook() -> tuple[Any, str]:
    """(owner, name) of what sends one LM call's request, inside the LM span: `execution.execute` (3.4), else
    `LM.forward`; either passes its arguments through when replaced by `f(*args, **kwargs)`."""
    if HAS_ENGINES:
        from dspy.clients import execution

        return execution, "execute"
    from dspy.clients.lm import LM

    return LM, "forward"
