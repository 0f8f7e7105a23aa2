"""Stable names for DSPy module calls: attribute paths, span kinds and readable signatures.

A path is found at call time by looking up, in the calling module, the attribute that holds the callee.
That survives the deep copies optimizers make (ids change, attribute names do not), so a program is
named the same before and after `compile`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from ...telemetry import _semconv as semconv
from ...telemetry._memo import DEFAULT_LIMIT, BoundedMemo
from ._frames import ModuleFrame

# DSPy's own bookkeeping attributes: never sub-modules, and `history` can hold 10,000 entries.
_SKIPPED_ATTRIBUTES = frozenset({"history", "callbacks", "demos", "config", "signature", "lm", "train",
                                 "traces", "stage", "_compiled"})
_MAX_SCANNED_ITEMS = 256

_signature_texts: WeakKeyDictionary[type, str] = WeakKeyDictionary()


def _snake_case(cls: type) -> str:
    """`RAG` -> `rag`, `MultiHopQA` -> `multi_hop_qa`, `ChainOfThought` -> `chain_of_thought`."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", cls.__name__)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced).lower()


snake_name: BoundedMemo[type, str] = BoundedMemo(_snake_case)
"""A module class's name in snake case (`_snake_case`), the root of every path: computed once per class."""


def attribute_name(owner: Any, child: Any) -> str | None:
    """The attribute of `owner` holding `child`: `answer`, `hops[1]` or `tools[search]`."""
    try:
        fields: dict[str, Any] = vars(owner)
    except TypeError:
        return None
    for key, value in fields.items():
        if value is child:
            return key
        if key in _SKIPPED_ATTRIBUTES:
            continue
        if isinstance(value, (list, tuple)) and len(value) <= _MAX_SCANNED_ITEMS:
            for index, item in enumerate(value):
                if item is child:
                    return f"{key}[{index}]"
        elif isinstance(value, dict) and len(value) <= _MAX_SCANNED_ITEMS:
            for item_key, item in value.items():
                if item is child:
                    return f"{key}[{item_key}]"
    return None


def module_path(parent: ModuleFrame | None, module: Any) -> str:
    """The dotted path of `module` called from `parent` (containers without a module are skipped)."""
    while parent is not None and parent.module is None:
        parent = parent.parent
    if parent is None:
        return snake_name(type(module))
    if parent.module is module:  # an item of `module.batch(...)`: named like the module itself
        return parent.path
    owner = parent.module
    key = (parent.path, id(owner), id(module))
    found = _found_paths.get(key)
    if found is not None and getattr(owner, "__dict__", _NO_FIELDS).get(found[1]) is module:
        return found[0]
    name = attribute_name(owner, module)
    path = f"{parent.path}.{name or snake_name(type(module))}"
    if name is not None and "[" not in name:
        if len(_found_paths) >= DEFAULT_LIMIT:  # BoundedMemo's policy: a full memo starts again empty
            _found_paths.clear()
        _found_paths[key] = (path, name)
    return path


_found_paths: dict[tuple[str, int, int], tuple[str, str]] = {}
"""(parent path, id(owner), id(child)) -> (path, attribute name) found before. A program calls the same sub-modules
again and again; a name found once stays the module's name while that attribute still holds it (checked on every
use, so a reused id is harmless).

Not a `BoundedMemo`: the answer depends on the objects, not on the key (their ids, so that no module, nor the deep
copies optimizers make of it, is kept alive here), and an entry is checked against the live attribute before use."""
_NO_FIELDS: dict[str, Any] = {}


def _kind_of(cls: type) -> str:
    """The OpenInference kind of a module class; a class may say `lmscope_span_kind = "RETRIEVER"`."""
    declared = getattr(cls, "lmscope_span_kind", None)
    if isinstance(declared, str):
        return declared.upper()
    if "retriev" in cls.__name__.lower() or cls.__module__.startswith("dspy.retrievers"):
        return semconv.KIND_RETRIEVER
    if cls.__name__ in ("ReAct", "ReActV2", "CodeAct"):
        return semconv.KIND_AGENT
    return semconv.KIND_CHAIN


span_kind: BoundedMemo[type, str] = BoundedMemo(_kind_of)
"""A module class's span kind (`_kind_of`), computed once per class."""


class ModuleFacts(NamedTuple):
    """What a module span reports about the module instance itself."""

    signature: Any
    """The module's DSPy `Signature` class, or None (a module without one)."""
    compiled: bool
    """Whether an optimizer compiled it (DSPy's `_compiled` flag)."""


def module_facts(module: Any) -> ModuleFacts:
    """`module.signature` and `bool(module._compiled)`, read from the instance dict where DSPy keeps both (a missing
    attribute would cost an exception)."""
    fields = getattr(module, "__dict__", None)
    if fields is None:
        return ModuleFacts(getattr(module, "signature", None), bool(getattr(module, "_compiled", False)))
    signature = fields.get("signature")
    if signature is None and _has_class_signature(type(module)):
        signature = getattr(module, "signature", None)
    if signature is None:  # ChainOfThought and kin keep theirs on the Predict they run: report that one
        inner = fields.get("predict")
        signature = getattr(inner, "__dict__", _NO_FIELDS).get("signature") if inner is not None else None
    compiled = fields["_compiled"] if "_compiled" in fields else getattr(module, "_compiled", False)
    return ModuleFacts(signature, bool(compiled))


def _declares_signature(cls: type) -> bool:
    """Whether `cls` or a base class defines `signature` (else looking it up on an instance only raises)."""
    return any("signature" in vars(base) for base in cls.__mro__)


_has_class_signature: BoundedMemo[type, bool] = BoundedMemo(_declares_signature)


def signature_text(signature: Any) -> str | None:
    """`question -> answer` for inline signatures, `GenerateAnswer(context, question -> answer)` for classes."""
    if not isinstance(signature, type):
        return None
    text = _signature_texts.get(signature)
    if text is None:
        dspy_signature: Any = signature  # its field lists are properties of DSPy's metaclass, unseen by a checker
        try:
            fields = f"{', '.join(dspy_signature.input_fields)} -> {', '.join(dspy_signature.output_fields)}"
        except AttributeError:
            return None
        name = signature.__name__
        text = fields if name == "StringSignature" else f"{name}({fields})"
        _signature_texts[signature] = text
    return text
