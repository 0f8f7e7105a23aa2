"""What a module span says about its module: the class's name in snake case, its span kind, its signature.

Where the module sits in the program (its attribute path) is `_module_paths.py`.
"""

from __future__ import annotations

import functools
import inspect
import re
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from ...telemetry import _semconv as semconv
from ...telemetry._memo import BoundedMemo

_signature_texts: WeakKeyDictionary[type, str] = WeakKeyDictionary()
_NO_FIELDS: dict[str, Any] = {}


_SPELLED = {"ColBERTv2": "colbertv2"}
"""DSPy classes whose names the rule below misreads (`col_ber_tv2`)."""


def _snake_case(cls: type) -> str:
    """`RAG` -> `rag`, `MultiHopQA` -> `multi_hop_qa`, `ChainOfThought` -> `chain_of_thought`."""
    if cls.__name__ in _SPELLED:
        return _SPELLED[cls.__name__]
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", cls.__name__)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced).lower()


snake_name: BoundedMemo[type, str] = BoundedMemo(_snake_case)
"""A module class's name in snake case (`_snake_case`), the root of every path: computed once per class."""


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


def _kind_is_default(cls: type) -> bool:
    """Whether a module class is CHAIN for want of anything saying otherwise: neither its own word
    (`lmscope_span_kind`, CHAIN included) nor its name. Only then may what it returns make it a retriever."""
    return not isinstance(getattr(cls, "lmscope_span_kind", None), str) and _kind_of(cls) == semconv.KIND_CHAIN


kind_is_default: BoundedMemo[type, bool] = BoundedMemo(_kind_is_default)


class ModuleFacts(NamedTuple):
    """What a module span reports about the module instance itself."""

    signature: Any
    """The module's DSPy `Signature` class, or None (a module without one)."""
    compiled: bool
    """Whether an optimizer compiled it: DSPy's `_compiled` flag, or demos held (`program.save()` does not keep the
    flag, so a predictor loaded with its demos is told compiled by them)."""
    demos: int
    """How many demos the predictor holds (its own `demos`, or the Predict it runs: ChainOfThought and kin)."""


_facts: Callable[[tuple[Any, bool, int]], ModuleFacts] = functools.partial(tuple.__new__, ModuleFacts)
"""`ModuleFacts(*values)`, made in C: a NamedTuple's own constructor is a Python function, run on every module span."""


def instance_fields(value: Any) -> Any:
    """`value.__dict__`, or None. Read with `object.__getattribute__`: DSPy's `Module.__getattribute__` is Python code
    (it watches for `forward`, nothing else) and costs every attribute read ~0.3 µs; the dict is the same."""
    try:
        return _object_attribute(value, "__dict__")
    except AttributeError:
        return None


_object_attribute = object.__getattribute__


def module_facts(module: Any) -> ModuleFacts:
    """`module.signature` and `bool(module._compiled)`, read from the instance dict where DSPy keeps both (a missing
    attribute would cost an exception)."""
    fields = instance_fields(module)
    if fields is None:
        return ModuleFacts(getattr(module, "signature", None), bool(getattr(module, "_compiled", False)), 0)
    signature = fields.get("signature")
    if signature is None and _has_class_signature(type(module)):
        signature = getattr(module, "signature", None)
    demos = fields.get("demos")
    inner_fields = _NO_FIELDS
    if signature is None or demos is None:  # ChainOfThought and kin keep theirs on the Predict they run: report that
        inner = fields.get("predict")
        inner_fields = (instance_fields(inner) or _NO_FIELDS) if inner is not None else _NO_FIELDS
    if signature is None:
        signature = inner_fields.get("signature")
    if demos is None:
        demos = inner_fields.get("demos")
    count = len(demos) if type(demos) is list else 0
    compiled = fields["_compiled"] if "_compiled" in fields else getattr(module, "_compiled", False)
    # Empty unless a program was loaded: its `get` misses through a caught KeyError (~0.4 µs), and its length is a
    # Python call; the flag is one read.
    loaded = _loaded_any and _loaded_with_demos.get(id(module)) is module
    return _facts((signature, bool(compiled) or count > 0 or loaded, count))


_loaded_with_demos: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
"""id -> module, for modules whose `load_state` (`program.load(path)`) gave their predictors demos: compiled
programs, although DSPy does not save the `_compiled` flag (`_wrappers.load_state`). Kept here, not on the module:
lmscope stores nothing on DSPy's objects. By id: not every module hashes (a `Tool` is a pydantic model)."""
_loaded_any = False
"""Whether `_loaded_with_demos` ever held a module."""


def loaded_with_demos(module: Any) -> None:
    """Note that `load_state` gave `module`'s predictors demos: its spans say it is compiled from now on."""
    global _loaded_any
    _loaded_with_demos[id(module)] = module
    _loaded_any = True


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


def positional_names(module: Any, method: str) -> tuple[str, ...]:
    """The names `module.<method>` (`forward`, or `aforward` for `acall`) gives the positional arguments `module(*args)`
    hands it, up to a `*args` (none past it): the class's method, looked up once per class, unless the instance holds
    one of its own."""
    fields = instance_fields(module)
    if fields is not None and method in fields:
        return _parameter_names(fields[method], bound=True)
    return _class_positional_names((type(module), method))


def _class_method_names(key: tuple[type, str]) -> tuple[str, ...]:
    cls, method = key
    try:
        found = inspect.getattr_static(cls, method)
    except AttributeError:
        return ()
    # A plain function is called bound: its first parameter is the module. A staticmethod takes none, and the signature
    # of a classmethod or a callable object, read through the class, already leaves out what Python passes itself.
    return _parameter_names(getattr(cls, method, None), bound=not inspect.isfunction(found))


def _parameter_names(function: Any, *, bound: bool) -> tuple[str, ...]:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # not callable, or a signature Python cannot tell
        return ()
    names = []
    for parameter in parameters if bound else parameters[1:]:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            break
        names.append(parameter.name)
    return tuple(names)


_class_positional_names: BoundedMemo[tuple[type, str], tuple[str, ...]] = BoundedMemo(_class_method_names)
"""(module class, method name) -> the names its method gives positional arguments."""
