"""Attribute patching that puts back exactly what it found, next to other tools' patches of the same functions.

Other DSPy and LiteLLM instrumentations patch some of the functions lmscope patches (`_foreign_patches.py` says how;
docs/dspy-internals.md §10, docs/litellm-internals.md §7). Whichever was set up first, neither may hide the other, and
either may leave without taking the other along:

- A holder of another tool on the function (a wrapt wrapper in the owner's dict or a subclass's; OpenInference's
  LiteLLM method and its dict of originals): lmscope goes beneath it, re-pointing it at lmscope's wrapper. The other
  tool's span then encloses lmscope's, in either order, and what the other tool puts back when it leaves is
  lmscope's wrapper.
- lmscope's wrappers carry no `__wrapped__` (their signature stays readable through `__signature__`): an uninstrument
  that walks `__wrapped__` to its end (OpenInference's DSPy one) stops at lmscope's wrapper, which stays in place.
- MLflow's patch keeps the original it puts back on `autolog(disable=True)`: lmscope wraps that stored original too,
  so what MLflow puts back is traced.

We never unwrap: restoring puts back the object lmscope found, wherever lmscope's wrapper is now (the owner's dict, a
subclass's dict or module attribute another tool's uninstrument moved it to, beneath another tool's patch, which
stays). A wrapper held in the closure
of another tool's plain function (MLflow's patch made after lmscope's) cannot be taken out: it stays there, and
lmscope's wrappers there pass calls through once lmscope has left (`Runtime.retired`).
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ._foreign_patches import MISSING, Holder, gorilla_original_key, lowest_holder


class _Patch:
    __slots__ = ("holders", "name", "own", "owner", "set_on_owner", "wrappers")

    def __init__(self, owner: Any, name: str, own: Any, set_on_owner: bool) -> None:
        self.owner = owner
        self.name = name
        self.own = own
        """What `owner`'s own dict held (MISSING: nothing, the attribute was inherited)."""
        self.set_on_owner = set_on_owner
        """The wrapper was set on `owner` itself (False: it went beneath another tool's patch there)."""
        self.wrappers: list[tuple[Any, Any]] = []
        """(lmscope's wrapper, what it calls): one, and a second over the original MLflow keeps to put back."""
        self.holders: list[Holder] = []
        """Other tools' patches re-pointed at lmscope's wrapper."""


class Patcher:
    """Replaces attributes on classes or modules and restores the originals in reverse order."""

    def __init__(self) -> None:
        self._patches: list[_Patch] = []

    def replace(self, owner: Any, name: str, make_wrapper: Callable[[Any], Any]) -> None:
        """Wrap `owner.name` with `make_wrapper(the function)`, beneath any other tool's patch we can go beneath."""
        own = vars(owner).get(name, MISSING)
        holder = lowest_holder(own, name)
        inner = holder.inner if holder is not None else getattr(owner, name)
        wrapper = _marked(_named_where_installed(_unwrap_stops_here(make_wrapper(inner), inner), owner, name))
        patch = _Patch(owner, name, own, set_on_owner=holder is None)
        patch.wrappers.append((wrapper, inner))
        if holder is None:
            setattr(owner, name, wrapper)
        else:
            holder.point_at(wrapper)
            patch.holders.append(holder)
        # Another tool's wrapper of this very method in a subclass's own dict shadows ours there: go beneath it too.
        for cls in _subclasses(owner):
            shadow = lowest_holder(vars(cls).get(name, MISSING), name)
            if shadow is not None and shadow.inner is inner:
                shadow.point_at(wrapper)
                patch.holders.append(shadow)
        key = gorilla_original_key(owner, name)
        if key is not None:  # what MLflow puts back when it leaves: traced too
            stored = vars(owner)[key]
            stored_wrapper = _unwrap_stops_here(make_wrapper(stored), stored)
            setattr(owner, key, stored_wrapper)
            patch.wrappers.append((stored_wrapper, stored))
        self._patches.append(patch)

    def restore_all(self) -> None:
        self.restore_to(0)

    def mark(self) -> int:
        """A point to `restore_to`: the patches made after it can be taken back on their own."""
        return len(self._patches)

    def restore_to(self, mark: int) -> None:
        while len(self._patches) > mark:
            _restore(self._patches.pop())

    def __bool__(self) -> bool:
        return bool(self._patches)


def _restore(patch: _Patch) -> None:
    owner, name = patch.owner, patch.name
    wrapper, inner = patch.wrappers[0]
    for holder in patch.holders:
        if holder.inner is wrapper:
            holder.point_at(inner)
    if patch.set_on_owner and _same_wrapper(vars(owner).get(name, MISSING), wrapper):
        if patch.own is MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, patch.own)
    for each_wrapper, each_inner in patch.wrappers:
        _take_out(owner, name, each_wrapper, each_inner)
    key = gorilla_original_key(owner, name)
    if key is not None:  # MLflow keeps one of ours as the original to put back: it gets what that one wrapped
        for each_wrapper, each_inner in patch.wrappers:
            if vars(owner)[key] is each_wrapper:
                setattr(owner, key, each_inner)


_MARK = "__lmscope_patch__"


def _marked(wrapper: Any) -> Any:
    """`wrapper`, marked as the one of this patch (`_same_wrapper`)."""
    if type(wrapper) is types.FunctionType:
        wrapper.__dict__[_MARK] = uuid.uuid4().hex
    return wrapper


def _same_wrapper(value: Any, wrapper: Any) -> bool:
    """`value` is `wrapper`, or a copy of it: cloudpickle copies a class of the app's own defined in `__main__` by
    value, lmscope's wrapper of its `compile` or `__call__` with it, and loading it in the same process sets the
    copies back in that very class (docs/dspy-internals.md §9). A copy has the same code (cloudpickle keeps its name,
    first line and bytecode, not its file name), which another tool's wrapper has not, and the same mark in its
    `__dict__`, which another of lmscope's wrappers from the same code (another class's `__call__`, which the app
    may have assigned here) has not: `functools.wraps` in another tool's wrapper copies the mark, not the code."""
    if value is wrapper:
        return True
    # `type`, not `isinstance`: a wrapt proxy (OpenInference's wrapper over lmscope's) claims its function's class
    # and lends it its `__code__` and `__dict__`.
    if type(value) is not types.FunctionType or type(wrapper) is not types.FunctionType:
        return False
    code, own = value.__code__, wrapper.__code__
    return (code.co_name, code.co_firstlineno, code.co_code) == (own.co_name, own.co_firstlineno, own.co_code) \
        and value.__dict__.get(_MARK) == wrapper.__dict__.get(_MARK) is not None


def _take_out(owner: Any, name: str, wrapper: Any, inner: Any) -> None:
    """Replace `wrapper` by `inner` wherever it is installed or beneath another tool's patch."""
    for target in (owner, *_subclasses(owner)):
        value = vars(target).get(name, MISSING)
        if value is wrapper:  # moved here by another tool's unwrap
            if isinstance(target, type) and _inherited(target, name) is inner:
                delattr(target, name)
            else:
                setattr(target, name, inner)
            continue
        holder = lowest_holder(value, name)
        if holder is not None and holder.inner is wrapper:
            holder.point_at(inner)


def _unwrap_stops_here(wrapper: Any, inner: Any) -> Any:
    """`wrapper` without `__wrapped__`, with `inner`'s signature: an unwrap that walks `__wrapped__` ends on it."""
    if isinstance(wrapper, types.FunctionType) and "__wrapped__" in vars(wrapper):
        del vars(wrapper)["__wrapped__"]
        # A callable without a signature: introspection sees the wrapper's own.
        with contextlib.suppress(TypeError, ValueError):
            wrapper.__signature__ = inspect.signature(inner)  # type: ignore[attr-defined]
        # Nor its annotations: `functools.wraps` copied them, but a copy of the wrapper (`_stack.attributed_to`) has
        # none, and string ones would be resolved in the wrapper's globals. Resolved here, from `inner`'s, so
        # `typing.get_type_hints` reads what it reads unwrapped (a `dspy.Tool` built from a wrapped method reads it).
        with contextlib.suppress(Exception):  # a name the annotations use that is not there yet: none, as before
            wrapper.__annotations__ = typing.get_type_hints(inner, include_extras=True)
    return wrapper


def _named_where_installed(wrapper: Any, owner: Any, name: str) -> Any:
    """`wrapper` of a module's function (or class) named for where it is installed (`__module__`, `__qualname__`), so
    that pickle finds it there. Pickle saves a function or a class as a reference to the module attribute its names
    give, and refuses one that is not there: a wrapper of `litellm.completion` named as the function it wraps
    (`litellm.main.completion`, which lmscope leaves alone) would make `ProcessPoolExecutor().submit(
    litellm.completion, ...)` fail. Named `litellm.completion`, it pickles as that attribute, as the function did
    unwrapped, and the process that loads it gets that attribute: traced if lmscope is on there. A method keeps its
    names: its class is where they lead."""
    if isinstance(owner, types.ModuleType) and isinstance(wrapper, (types.FunctionType, type)):
        wrapper.__module__, wrapper.__qualname__ = owner.__name__, name
    return wrapper


def _subclasses(owner: Any) -> Iterator[type]:
    """Every class below `owner` (a class), each once."""
    if not isinstance(owner, type):
        return
    seen: set[type] = set()
    pending: list[type] = list(type.__subclasses__(owner))
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            yield cls
            pending.extend(type.__subclasses__(cls))


def _inherited(cls: type, name: str) -> Any:
    """What `cls` would get for `name` from its bases (their own dicts, in MRO order)."""
    for base in cls.__mro__[1:]:
        if name in vars(base):
            return vars(base)[name]
    return MISSING


subclasses = _subclasses
"""Every class below a class, each once (what the DSPy instrumentation walks to wrap each optimizer's `compile`)."""
