"""Wrapping a method in a DSPy base class and in every subclass that defines its own, those defined later included.

`Teleprompter.compile` is defined anew by each optimizer, and `BaseLM.__call__` by an LM that does not go through
BaseLM's (DSPy 3.0-3.2's DummyLM, a user's LM): wrapping the base alone would miss them. A subclass defined after
`instrument()` is wrapped by an `__init_subclass__` on the base: DSPy's own, wrapped (Teleprompter's since DSPy 3.3,
docs/dspy-internals.md §12), or lmscope's where the base has none, deleted again on uninstrument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...telemetry._internal_errors import report_internal_error
from .._patching import Patcher, subclasses


def patch_overrides(patcher: Patcher, base: type, names: Sequence[str],
                    wrap: Callable[[str], Callable[[Any], Any]]) -> None:
    """Wrap each of `names` on `base` and on each subclass that defines its own with `wrap(name)(function)`."""
    for cls in (base, *subclasses(base)):
        for name in names:
            if name in vars(cls):
                patcher.replace(cls, name, wrap(name))
    hook = vars(base).get("__init_subclass__")
    if hook is None:
        def define(cls: type, /, **kwargs: Any) -> None:
            super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]  # mypy: `type` is a type
    elif isinstance(hook, classmethod):
        define = hook.__func__
    else:  # something we do not know: leave later subclasses' methods unwrapped rather than break their definition
        return

    def __init_subclass__(cls: type, /, **kwargs: Any) -> None:
        define(cls, **kwargs)
        if not patcher:  # empty once lmscope has left
            return
        for name in names:
            if name in vars(cls):
                try:
                    patcher.replace(cls, name, wrap(name))
                except Exception as exc:  # noqa: BLE001 - the class is made all the same, that method unwrapped
                    report_internal_error(f"wrapping {name} of a new {base.__name__} subclass", exc)

    patcher.replace(base, "__init_subclass__", lambda _: classmethod(__init_subclass__))
