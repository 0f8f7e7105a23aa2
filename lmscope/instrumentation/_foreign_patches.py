"""How other instrumentations patch a method, as far as lmscope must know to patch it next to them.

- wrapt `FunctionWrapper`s (OpenInference's DSPy instrumentor, and Logfire's `instrument_dspy()`, which runs it): the
  wrapper sits in the class's dict (or a subclass's: OpenInference wraps `LM.__call__`, shadowing `BaseLM.__call__`)
  and calls its `__wrapped__`, which it reads at each call, so a new one can be set. Its uninstrument walks
  `__wrapped__` to the end of the chain and installs what it finds there.
- MLflow's autologging (`safe_patch`, its vendored gorilla): a plain function in the class's dict that calls the
  original it captured when patching; it keeps that original as `_gorilla_original_<name>` on the class (with
  `_gorilla_active_patch_<name>` while the patch is on), and `autolog(disable=True)` sets the attribute back to it.
"""

from __future__ import annotations

from typing import Any

MISSING = object()


def lowest_wrapt_wrapper(value: Any) -> Any:
    """The innermost of a chain of wrapt FunctionWrappers (the one over a plain callable), or None for no wrapper."""
    if value is MISSING or type(value).__module__ == "builtins":  # a plain function: no need to import wrapt
        return None
    import wrapt

    lowest = None
    while isinstance(value, wrapt.FunctionWrapper):
        lowest, value = value, value.__wrapped__
    return lowest


def repoint(holder: Any, target: Any) -> None:
    holder.__wrapped__ = target


def gorilla_original_key(owner: Any, name: str) -> str | None:
    """The attribute under which MLflow keeps the original it puts back on `autolog(disable=True)`, while its patch of
    `owner.name` is on; else None."""
    if not isinstance(owner, type):
        return None
    key = f"_gorilla_original_{name}"
    own = vars(owner)
    return key if key in own and f"_gorilla_active_patch_{name}" in own else None
