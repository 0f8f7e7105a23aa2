"""Stable names for DSPy module calls: the attribute path of the callee in the program.

A path is found at call time by looking up, in the calling module, the attribute that holds the callee (or the list,
tuple or dict item, spelled as DSPy's `named_predictors()` spells it, or the attribute path through a plain object).
That survives the deep copies optimizers make (ids change, attribute names do not), so a program is
named the same before and after `compile`. A module built during the call is named by its class and signature.
The README's span contract lists the rules; docs/dspy-internals.md §9 the DSPy facts they follow.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from types import FunctionType, MethodType, ModuleType
from typing import Any, TypeVar

from ...telemetry._memo import DEFAULT_LIMIT
from ._frames import ModuleFrame
from ._naming import instance_fields, module_facts, snake_name

# DSPy's own bookkeeping attributes: never sub-modules, and `history` can hold 10,000 entries.
_SKIPPED_ATTRIBUTES = frozenset({"history", "callbacks", "demos", "config", "signature", "lm", "train",
                                 "traces", "stage", "_compiled"})
_MAX_SCANNED_ITEMS = 256
Key = TypeVar("Key")
Entry = TypeVar("Entry")


def module_path(parent: ModuleFrame | None, module: Any) -> tuple[str, tuple[str, ...]]:
    """The dotted path of `module` called from `parent` (containers without a module are skipped), and its other paths
    in the parent that holds it (`qa.qa_alias`: a module held twice keeps the first name), () for a module held once.

    Where the parent holds it, as DSPy's `named_predictors()` names it: `answer`, `agents[1]`, `tools['search']`;
    else through what the parent holds (`helper.predict`, `grid[0][1]`, `answer.predict`, `_search`); else, for a
    module built during the call, the name of the one module the parent holds that it copies (`dspy.BestOfN`'s
    attempts run `self.module.deepcopy()`: `best_of_n.module`), else its class and signature
    (`predict#question->answer`).
    """
    while parent is not None and parent.module is None:
        parent = parent.parent
    if parent is None:
        return snake_name(type(module)), ()
    if parent.module is module:  # an item of `module.batch(...)`: named like the module itself
        return parent.path, ()
    owner = parent.module
    key = (parent.path, id(owner), id(module))
    found = _found_attributes.get(key)
    if found is not None and (instance_fields(owner) or _NO_FIELDS).get(found[1]) is module:
        return found[0], found[2]
    deeper = _found_items.get(key)
    if deeper is not None and _follow(owner, deeper[1]) is module:
        return deeper[0], deeper[2]
    if found is not None or deeper is not None:  # moved, or a reused id
        _found_attributes.pop(key, None)
        _found_items.pop(key, None)
    return _find_path(parent.path, key, owner, module)


def _find_path(parent_path: str, key: tuple[str, int, int], owner: Any,
               module: Any) -> tuple[str, tuple[str, ...]]:
    """`module_path` when no remembered location holds: look, and remember what was found."""
    fields = _fields(owner)
    held = _held(fields, module) if fields is not None else []
    if not held:
        unheld = _found_unheld.get(key)
        if unheld is not None and unheld[0]() is module:  # the same live object, still not an attribute or item
            return unheld[1], ()
        reached = _search(fields, module) if fields is not None else None
        if reached is None:
            path = f"{parent_path}.{_unheld_name(fields, module)}"
            with contextlib.suppress(TypeError):  # not weakly referenceable: looked for again next time
                _remember(_found_unheld, key, (weakref.ref(module), path))
            return path, ()
        held = [reached]
    (first, rest), others = held[0], held[1:]
    path = f"{parent_path}.{_render(first, rest)}"
    aliases = tuple(f"{parent_path}.{_render(*other)}" for other in others)
    if rest:
        _remember(_found_items, key, (path, (first, *rest), aliases))
    else:
        _remember(_found_attributes, key, (path, first, aliases))
    return path, aliases


def _remember(memo: dict[Key, Entry], key: Key, entry: Entry) -> None:
    if len(memo) >= DEFAULT_LIMIT:  # BoundedMemo's policy: a full memo starts again empty
        memo.clear()
    memo[key] = entry


Step = str | tuple[Any, bool]
"""One step from an object to what it holds: an attribute name, or (index or key, whether it is a dict key)."""
Location = tuple[str, tuple[Step, ...]]
"""The parent's attribute holding a module, and the steps from that attribute's value to the module."""

_found_attributes: dict[tuple[str, int, int], tuple[str, str, tuple[str, ...]]] = {}
"""(parent path, id(owner), id(child)) -> (path, the owner's attribute holding the child, aliases) found before.
A program calls the same sub-modules again and again; a name found once stays the module's name while that
attribute still holds it: checked on every use (one dict lookup), so a reused id is harmless.

Not a `BoundedMemo`: the answer depends on the objects, not on the key (their ids, so that no module, nor the deep
copies optimizers make of it, is kept alive here), and an entry is checked against the live attribute before use.
Modules found nowhere are in `_found_unheld`."""
_found_items: dict[tuple[str, int, int], tuple[str, tuple[Step, ...], tuple[str, ...]]] = {}
"""The same for a child found further than an attribute (`agents[1]`, `helper.predict`): (path, the steps from the
owner to the child, aliases), checked by following those steps through the live objects (`_follow`). Apart, so that
an attribute hit costs what it did before these were remembered."""
_found_unheld: dict[tuple[str, int, int], tuple[weakref.ref[Any], str]] = {}
"""The same for a child its parent does not hold (a module-level predictor, one built during the call): a weak
reference to it, so a reused id is never taken for it, and its name. Used only after the owner's attributes and
their items were looked through again and hold it nowhere, so a module assigned to one later is named by it; what a
search through plain objects would find later is not looked for again while the module lives."""
_NO_FIELDS: dict[str, Any] = {}


def _fields(value: Any) -> dict[str, Any] | None:
    """`vars(value)`, None for an object without an instance dict. Read past the object's own `__getattribute__` (a
    proxy's may raise, or count reads, for any name) and without `__eq__`: only a `__dict__` property its class
    defines (rare) runs code of the program's."""
    try:
        fields = _object_attribute(value, "__dict__")
    except Exception:  # noqa: BLE001 - no instance dict (`__slots__`), or a `__dict__` property of the class's that raised
        return None
    return fields if type(fields) is dict else None  # a class's is a mappingproxy: its attributes are no instance's


_object_attribute = object.__getattribute__


def _held(fields: dict[str, Any], child: Any) -> list[Location]:
    """Where the owner whose `vars()` are `fields` holds `child` itself, as DSPy's `named_parameters()` looks, in its
    order: each attribute, then the items of an attribute's list, tuple or dict. The first is the child's name, the
    others its aliases."""
    held: list[Location] = []
    for key, value in fields.items():
        if value is child:
            held.append((key, ()))
        elif key not in _SKIPPED_ATTRIBUTES:
            held.extend((key, (step,)) for step, item in _items(value) if item is child)
    return held


_MAX_DEPTH = 3
"""Steps from the parent a search goes: `helper.predict`, `helpers[0].predict`, `grid[0][1]`, `a.b.predict`."""
_MAX_VISITED = 256
"""Objects one search looks into, whatever their number of attributes: the cost of a miss stays bounded."""
_SCALARS = (str, bytes, int, float, bool, type(None), type, ModuleType, FunctionType, MethodType)
"""Values a search never looks into. Classes are tested with `issubclass(type(value), ...)`, not `isinstance`, which
asks a DSPy module for its `__class__` through `Module.__getattribute__` (a Python call per test)."""


def _search(fields: dict[str, Any], child: Any) -> Location | None:
    """Where the owner holds `child` further away (the owner does not hold it itself): breadth first, up to
    `_MAX_DEPTH` steps, through attributes of plain objects and sub-modules and items of nested containers."""
    queue: deque[tuple[Location, Any]] = deque()
    seen: set[int] = set()
    for key, value in fields.items():
        if key not in _SKIPPED_ATTRIBUTES and not issubclass(type(value), _SCALARS) and id(value) not in seen:
            seen.add(id(value))
            queue.append(((key, ()), value))
    budget = _MAX_VISITED
    while queue and budget > 0:
        (first, steps), value = queue.popleft()
        budget -= 1
        for step, item in _held_by(value):
            if item is child:
                return first, (*steps, step)
            if len(steps) + 2 < _MAX_DEPTH and not issubclass(type(item), _SCALARS) and id(item) not in seen:
                seen.add(id(item))
                queue.append(((first, (*steps, step)), item))
    return None


def _items(value: Any) -> list[tuple[Step, Any]]:
    """The items of a list, tuple or dict (with the step that reaches each), as DSPy walks them; [] otherwise."""
    cls = type(value)
    if issubclass(cls, (list, tuple)) and len(value) <= _MAX_SCANNED_ITEMS:
        return [((index, False), item) for index, item in enumerate(value)]
    if issubclass(cls, dict) and len(value) <= _MAX_SCANNED_ITEMS:
        return [((key, True), item) for key, item in value.items()]
    return []


def _held_by(value: Any) -> list[tuple[Step, Any]]:
    """What `value` holds: its items if a container, else its attributes (DSPy's bookkeeping left out)."""
    if issubclass(type(value), (list, tuple, dict)):
        return _items(value)
    fields = _fields(value)
    if fields is None:
        return []
    return [(key, item) for key, item in fields.items() if key not in _SKIPPED_ATTRIBUTES]


def _follow(value: Any, steps: tuple[Step, ...]) -> Any:
    """What `steps` reach from `value` now, or None: how a remembered location is checked against the live objects."""
    for step in steps:
        if isinstance(step, str):
            value = (_fields(value) or _NO_FIELDS).get(step)
        else:
            key, in_dict = step
            if in_dict:
                value = value.get(key) if isinstance(value, dict) else None
            else:
                value = value[key] if isinstance(value, (list, tuple)) and key < len(value) else None
    return value


def _render(first: str, steps: tuple[Step, ...]) -> str:
    """`agents[1]`, `tools['search']` (DSPy's spelling, `named_parameters()`), `helper.predict`."""
    parts = [first]
    for step in steps:
        if isinstance(step, str):
            parts.append(f".{step}")
        else:
            key, in_dict = step
            parts.append(f"['{key}']" if in_dict else f"[{key}]")
    return "".join(parts)


def _unheld_name(fields: dict[str, Any] | None, module: Any) -> str:
    """The name of a module its parent does not hold: built during the call, or held out of reach."""
    signature = module_facts(module).signature
    if fields is not None:
        twin = _only_twin(fields, module, signature)
        if twin is not None:
            return _render(*twin)
    tag = _signature_tag(signature)
    name = snake_name(type(module))
    return f"{name}#{tag}" if tag else name


def _only_twin(fields: dict[str, Any], module: Any, signature: Any) -> Location | None:
    """The one module the parent holds (as an attribute or a container item) of `module`'s class and signature:
    the module `module` was copied from. None if there is none, or more than one."""
    cls = type(module)
    twins: list[Location] = []
    for key, value in fields.items():
        if key in _SKIPPED_ATTRIBUTES:
            continue
        candidates = [((key, ()), value)] if type(value) is cls else [
            ((key, (step,)), item) for step, item in _items(value) if type(item) is cls]
        twins.extend(location for location, candidate in candidates
                     if module_facts(candidate).signature is signature)
        if len(twins) > 1:
            return None
    return twins[0] if twins else None


def _signature_tag(signature: Any) -> str | None:
    """`question->answer` for an inline signature, `GenerateAnswer` for a class; None without one."""
    if not isinstance(signature, type):
        return None
    name = signature.__name__
    if name != "StringSignature":
        return name
    dspy_signature: Any = signature
    try:
        return f"{','.join(dspy_signature.input_fields)}->{','.join(dspy_signature.output_fields)}"
    except AttributeError:
        return None
