"""Stable names for DSPy module calls: attribute paths, span kinds and readable signatures.

A path is found at call time by looking up, in the calling module, the attribute that holds the callee.
That survives the deep copies optimizers make (ids change, attribute names do not), so a program is
named the same before and after `compile`.
"""

from __future__ import annotations

import re
from typing import Any
from weakref import WeakKeyDictionary

from ...telemetry import _semconv as semconv
from ._frames import ModuleFrame

# DSPy's own bookkeeping attributes: never sub-modules, and `history` can hold 10,000 entries.
_SKIPPED_ATTRIBUTES = frozenset({"history", "callbacks", "demos", "config", "signature", "lm", "train",
                                 "traces", "stage", "_compiled"})
_MAX_SCANNED_ITEMS = 256

_snake_names: dict[type, str] = {}
_kinds: dict[type, str] = {}
_signature_texts: WeakKeyDictionary[type, str] = WeakKeyDictionary()


def snake_name(cls: type) -> str:
    """`RAG` -> `rag`, `MultiHopQA` -> `multi_hop_qa`, `ChainOfThought` -> `chain_of_thought`."""
    name = _snake_names.get(cls)
    if name is None:
        spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", cls.__name__)
        name = _snake_names[cls] = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced).lower()
    return name


def attribute_name(owner: Any, child: Any) -> str | None:
    """The attribute of `owner` holding `child`: `answer`, `hops[1]` or `tools[search]`."""
    try:
        items = vars(owner).items()
    except TypeError:
        return None
    for key, value in items:
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
        if len(_found_paths) >= 4096:
            _found_paths.clear()
        _found_paths[key] = (path, name)
    return path


_found_paths: dict[tuple[str, int, int], tuple[str, str]] = {}
"""(parent path, id(owner), id(child)) -> (path, attribute name) found before. A program calls the same sub-modules
again and again; a name found once stays the module's name while that attribute still holds it (checked on every
use, so a reused id is harmless)."""
_NO_FIELDS: dict[str, Any] = {}


def span_kind(cls: type) -> str:
    """The OpenInference kind of a module class; a class may say `lmscope_span_kind = "RETRIEVER"`."""
    kind = _kinds.get(cls)
    if kind is None:
        declared = getattr(cls, "lmscope_span_kind", None)
        if isinstance(declared, str):
            kind = declared.upper()
        elif "retriev" in cls.__name__.lower() or cls.__module__.startswith("dspy.retrievers"):
            kind = semconv.KIND_RETRIEVER
        elif cls.__name__ in ("ReAct", "CodeAct"):
            kind = semconv.KIND_AGENT
        else:
            kind = semconv.KIND_CHAIN
        _kinds[cls] = kind
    return kind


def module_facts(module: Any) -> tuple[Any, bool]:
    """`(module.signature, bool(module._compiled))`, read from the instance dict where DSPy keeps both (a missing
    attribute would cost an exception)."""
    fields = getattr(module, "__dict__", None)
    if fields is None:
        return getattr(module, "signature", None), bool(getattr(module, "_compiled", False))
    signature = fields.get("signature")
    if signature is None:
        cls = type(module)
        has = _class_signatures.get(cls)
        if has is None:
            has = _class_signatures[cls] = any("signature" in vars(base) for base in cls.__mro__)
        if has:
            signature = getattr(module, "signature", None)
    compiled = fields["_compiled"] if "_compiled" in fields else getattr(module, "_compiled", False)
    return signature, bool(compiled)


_class_signatures: dict[type, bool] = {}


def signature_text(signature: Any) -> str | None:
    """`question -> answer` for inline signatures, `GenerateAnswer(context, question -> answer)` for classes."""
    if not isinstance(signature, type):
        return None
    text = _signature_texts.get(signature)
    if text is None:
        try:
            fields = f"{', '.join(signature.input_fields)} -> {', '.join(signature.output_fields)}"
        except AttributeError:
            return None
        name = signature.__name__
        text = fields if name == "StringSignature" else f"{name}({fields})"
        _signature_texts[signature] = text
    return text
