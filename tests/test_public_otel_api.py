"""lmscope uses only the public API of OpenTelemetry: no `_name` of any `opentelemetry` package, no SDK span subclass.

OpenTelemetry changes its private names between releases without notice (the SDK reshuffled exactly the span
internals an earlier fast path relied on several times in one year), so a private name is a break waiting for the
next release. This test reads every module under lmscope/ with `ast`; it fails, naming file and line, on:

- an import of a private name: `from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY`, a module path
  with a `_segment` (`from opentelemetry.sdk.trace._tracer_metrics import ...`, `import opentelemetry.sdk._logs`);
- `name._x`, `getattr(name, "_x")` (or has/set/delattr) where `name` was imported from opentelemetry;
- `obj._x` or `getattr(obj, "_x")` on any other object when `_x` is a private name the installed opentelemetry
  packages define (`span._attributes`, `processor._on_ending(...)`, `runtime._current_context`) and lmscope does not
  define it for itself. Names lmscope's own classes define too (`_lock`, `_queue`) are taken as lmscope's: what an
  unknown object is cannot be known from the source, and this keeps lmscope's own private names out of the way;
- a class that derives from an OpenTelemetry class and defines a private member of that class (overriding an SDK
  internal such as `SpanProcessor._on_ending`), or derives from the SDK's span classes at all. The hooks a base
  documents for its subclasses (`BaseInstrumentor._instrument`/`_uninstrument`) are its public contract.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import opentelemetry
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lmscope"
_ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "hasattr", "setattr", "delattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_otel(module: str | None) -> bool:
    return module is not None and (module == "opentelemetry" or module.startswith("opentelemetry."))


def _sources() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _otel_private_names() -> frozenset[str]:
    """Every private name the installed opentelemetry packages define: functions, classes, assigned names and
    attributes (`self._attributes = ...`)."""
    names: set[str] = set()
    for root in opentelemetry.__path__:
        for path in Path(root).rglob("*.py"):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):  # pragma: no cover - a broken file in site-packages
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
    return frozenset(name for name in names if _private(name))


@dataclass
class Module:
    path: Path
    tree: ast.Module
    otel_names: dict[str, str] = field(default_factory=dict)
    """Local name -> the opentelemetry module or object it was imported as (`trace_api` -> `opentelemetry.trace`)."""

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"


def _modules() -> list[Module]:
    modules = []
    for path in _sources():
        module = Module(path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_otel(alias.name):
                        local = alias.asname or alias.name.split(".")[0]
                        module.otel_names[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_otel(node.module):
                for alias in node.names:
                    module.otel_names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        modules.append(module)
    return modules


MODULES = _modules()
OTEL_PRIVATE = _otel_private_names()


def _root_name(node: ast.expr) -> str | None:
    """`a` for `a`, `a.b.c`, `a.b().c`: the local name an attribute chain starts from."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _resolve(dotted: str) -> object | None:
    """The object `opentelemetry.sdk.trace.SpanProcessor` names, or None if it cannot be imported."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                found = getattr(found, part)
        except AttributeError:
            return None
        return found
    return None


def _otel_bases(module: Module, cls: ast.ClassDef) -> list[type]:
    bases = []
    for base in cls.bases:
        root = _root_name(base)
        if root in module.otel_names:
            dotted = module.otel_names[root] + ast.unparse(base)[len(root):]
            resolved = _resolve(dotted)
            if isinstance(resolved, type):
                bases.append(resolved)
    return bases


def _class_members(cls: ast.ClassDef) -> Iterator[tuple[str, ast.AST]]:
    """Names a class defines: methods, class attributes, `__slots__` entries and `self.x = ...` in its methods."""
    for statement in cls.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield statement.name, statement
            for node in ast.walk(statement):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    yield node.attr, node
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    yield target.id, statement
                    if target.id == "__slots__" and statement.value is not None:
                        for item in ast.walk(statement.value):
                            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                                yield item.value, item


_EXTENSION_POINTS = frozenset({
    ("opentelemetry.instrumentation.instrumentor.BaseInstrumentor", "_instrument"),
    ("opentelemetry.instrumentation.instrumentor.BaseInstrumentor", "_uninstrument"),
})
"""Private by name, public by contract: the methods an OpenTelemetry base class documents for subclasses to define
(BaseInstrumentor's `instrument()` calls `_instrument(**kwargs)`, `_uninstrument` is abstract)."""


def _overrides() -> tuple[list[str], frozenset[str]]:
    """(findings, names lmscope defines for itself): the private members a class takes over from an OpenTelemetry
    base are findings, and do not count as lmscope's own names."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Span as ApiSpan

    findings: list[str] = []
    own: set[str] = set()
    for module in MODULES:
        methods = {id(statement) for node in ast.walk(module.tree) if isinstance(node, ast.ClassDef)
                   for statement in node.body}  # judged with their class below
        for node in ast.walk(module.tree):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name)
                    and id(node) not in methods):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
                own.add(node.id)
            if not isinstance(node, ast.ClassDef):
                continue
            own.add(node.name)
            bases = _otel_bases(module, node)
            for base in bases:
                if issubclass(base, ReadableSpan) or (issubclass(base, ApiSpan) and base.__module__.startswith(
                        "opentelemetry.sdk")):
                    findings.append(f"{module.where(node)}: class {node.name} derives from the SDK span "
                                    f"{base.__module__}.{base.__qualname__}")
            for name, where in _class_members(node):
                if not _private(name):
                    continue
                taken = [base for base in bases if hasattr(base, name)
                         and (f"{base.__module__}.{base.__qualname__}", name) not in _EXTENSION_POINTS]
                if taken:
                    findings.append(f"{module.where(where)}: class {node.name} defines {name}, a private member of "
                                    f"{taken[0].__module__}.{taken[0].__qualname__}")
                else:
                    own.add(name)
    return findings, frozenset(own)


OVERRIDE_FINDINGS, LMSCOPE_NAMES = _overrides()


def _import_findings(module: Module) -> Iterator[str]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_otel(node.module):
            assert node.module is not None
            if any(_private(part) for part in node.module.split(".")):
                yield f"{module.where(node)}: from {node.module} import ... (a private module)"
            for alias in node.names:
                if _private(alias.name):
                    yield f"{module.where(node)}: from {node.module} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_otel(alias.name) and any(_private(part) for part in alias.name.split(".")):
                    yield f"{module.where(node)}: import {alias.name}"


def _attribute_findings(module: Module) -> Iterator[str]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner, name = node.value, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _ATTRIBUTE_FUNCTIONS
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            owner, name = node.args[0], node.args[1].value
        else:
            continue
        root = _root_name(owner)
        if root in module.otel_names:
            yield f"{module.where(node)}: {ast.unparse(node)} (a private name of {module.otel_names[root]})"
        elif name in OTEL_PRIVATE and name not in LMSCOPE_NAMES:
            yield f"{module.where(node)}: {ast.unparse(node)} ({name} is a private OpenTelemetry name)"


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) > 20 and any(module.otel_names for module in MODULES)
    assert {"_attributes", "_SPAN_KEY", "_SUPPRESS_INSTRUMENTATION_KEY", "_on_ending"} <= OTEL_PRIVATE


@pytest.mark.parametrize("module", MODULES, ids=lambda module: str(module.path.relative_to(PACKAGE.parent)))
def test_no_private_opentelemetry_import_or_attribute(module: Module) -> None:
    findings = [*_import_findings(module), *_attribute_findings(module)]
    assert not findings, "private OpenTelemetry names used:\n" + "\n".join(findings)


def test_no_class_overrides_opentelemetry_internals_or_subclasses_an_sdk_span() -> None:
    assert not OVERRIDE_FINDINGS, "\n".join(OVERRIDE_FINDINGS)


# --- the checks themselves: each rule catches what it is for and leaves lmscope's own names alone --------------


def _findings_in(source: str) -> list[str]:
    module = Module(PACKAGE / "probe.py", ast.parse(source))
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and _is_otel(node.module):
            for alias in node.names:
                module.otel_names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_otel(alias.name):
                    module.otel_names[alias.asname or alias.name.split(".")[0]] = alias.name
    return [*_import_findings(module), *_attribute_findings(module)]


@pytest.mark.parametrize("source", [
    "from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY",
    "from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics",
    "import opentelemetry.sdk._logs",
    "from opentelemetry import context as c\nc._RUNTIME_CONTEXT",
    "from opentelemetry import context as c\ngetattr(c, '_RUNTIME_CONTEXT', None)",
    "def f(span):\n    return span._attributes._dict",
    "def f(runtime):\n    return getattr(runtime, '_current_context', None)",
    "def f(tracer):\n    return tracer._span_limits",
])
def test_the_rules_catch_private_names(source: str) -> None:
    assert _findings_in(source)


@pytest.mark.parametrize("source", [
    "from opentelemetry.context import attach, detach, get_current\nfrom opentelemetry import trace\ntrace.Span",
    "from opentelemetry.instrumentation.utils import suppress_instrumentation",
    "def f(frame):\n    return frame._private_to_lmscope",
    "def f(processor):\n    return processor._queue",  # the batch processor's own slot, though OTel has a `_queue` too
    "from opentelemetry.trace import Span\nSpan.__init__",
])
def test_the_rules_leave_public_and_lmscope_names_alone(source: str) -> None:
    assert _findings_in(source) == []
