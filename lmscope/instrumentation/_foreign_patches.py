"""How other instrumentations patch a function, as far as lmscope must know to patch it next to them.

- wrapt `FunctionWrapper`s (OpenInference's DSPy instrumentor, and Logfire's `instrument_dspy()`, which runs it): the
  wrapper sits in the class's dict (or a subclass's: OpenInference wraps `LM.__call__`, shadowing `BaseLM.__call__`)
  and calls its `__wrapped__`, which it reads at each call, so a new one can be set. Its uninstrument walks
  `__wrapped__` to the end of the chain and installs what it finds there.
- OpenInference's LiteLLM instrumentor (and Logfire's `instrument_litellm()`, which runs it): `litellm.<name>` is a
  bound method of the instrumentor, which calls `original_litellm_funcs[name]` (a dict on its class), read at each
  call, so a new one can be set there. Its uninstrument sets each `litellm.<name>` back to what that dict holds.
- MLflow's autologging (`safe_patch`, its vendored gorilla): a plain function in the class's dict that calls the
  original it captured when patching; it keeps that original as `_gorilla_original_<name>` on the class (with
  `_gorilla_active_patch_<name>` while the patch is on), and `autolog(disable=True)` sets the attribute back to it.

The first two are *holders*: another tool's patch that calls an inner function it reads at each call. lmscope goes
beneath a holder by pointing it at lmscope's wrapper (`_patching.py`).
"""

from __future__ import annotations

import types
from typing import Any

MISSING = object()

_OPENINFERENCE_LITELLM_ORIGINALS = "original_litellm_funcs"


class Holder:
    """Another tool's patch of `name` that calls `inner`, which lmscope may re-point (to go beneath it, or to take its
    own wrapper out from beneath it)."""

    __slots__ = ("_key", "_target", "patch")

    def __init__(self, patch: Any, target: Any, key: str | None) -> None:
        self.patch = patch
        """The other tool's patch as installed (a wrapt wrapper, a bound method)."""
        self._target = target
        self._key = key
        """None: `target` is a wrapt wrapper (`__wrapped__`); else `target` is a dict of originals by this key."""

    @property
    def inner(self) -> Any:
        """What the patch calls now (MISSING when the other tool has forgotten it: it left)."""
        if self._key is None:
            return self._target.__wrapped__
        return self._target.get(self._key, MISSING)

    def point_at(self, target: Any) -> None:
        if self._key is None:
            self._target.__wrapped__ = target
        elif self._key in self._target:  # a tool that has left keeps nothing: nothing to re-point
            self._target[self._key] = target


def _holder(value: Any, name: str) -> Holder | None:
    """`value` as a holder of `name`'s inner function, or None when it is no other tool's patch we can go beneath."""
    if value is MISSING or value is None:
        return None
    if type(value) is types.MethodType:
        originals = getattr(value.__self__, _OPENINFERENCE_LITELLM_ORIGINALS, None)
        if isinstance(originals, dict) and name in originals and _is_openinference(value.__self__):
            return Holder(value, originals, name)
        return None
    if type(value).__module__ == "builtins":  # a plain function: no need to import wrapt
        return None
    import wrapt

    return Holder(value, value, None) if isinstance(value, wrapt.FunctionWrapper) else None


def lowest_holder(value: Any, name: str) -> Holder | None:
    """The innermost of a chain of other tools' patches of `name` (the one over a plain callable), or None."""
    lowest = None
    holder = _holder(value, name)
    while holder is not None:
        lowest = holder
        holder = _holder(holder.inner, name)
    return lowest


def patch_chain(value: Any, name: str) -> list[Any]:
    """The other tools' patches of `name` in `value`, outermost first."""
    chain = []
    holder = _holder(value, name)
    while holder is not None:
        chain.append(holder.patch)
        holder = _holder(holder.inner, name)
    return chain


def _is_openinference(instrumentor: Any) -> bool:
    return type(instrumentor).__module__.startswith("openinference.")


def gorilla_original_key(owner: Any, name: str) -> str | None:
    """The attribute under which MLflow keeps the original it puts back on `autolog(disable=True)`, while its patch of
    `owner.name` is on; else None."""
    if not isinstance(owner, type):
        return None
    key = f"_gorilla_original_{name}"
    own = vars(owner)
    return key if key in own and f"_gorilla_active_patch_{name}" in own else None
