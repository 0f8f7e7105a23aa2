"""Attribute patching that puts back exactly what it found.

OpenInference's uninstrument follows `__wrapped__` chains and strips DSPy's own `@with_callbacks`
decorators with them (docs/dspy-internals.md §10). We never unwrap: we remember the object that was in the
class `__dict__` and restore that very object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MISSING = object()


class Patcher:
    """Replaces attributes on classes or modules and restores the originals in reverse order."""

    def __init__(self) -> None:
        self._patches: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, make_wrapper: Callable[[Any], Any]) -> None:
        """Set `owner.name` to `make_wrapper(current value)`, remembering what `owner` itself held."""
        own = vars(owner).get(name, _MISSING)
        current = getattr(owner, name)
        setattr(owner, name, make_wrapper(current))
        self._patches.append((owner, name, own))

    def restore_all(self) -> None:
        while self._patches:
            owner, name, own = self._patches.pop()
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

    def __bool__(self) -> bool:
        return bool(self._patches)
