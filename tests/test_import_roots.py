"""`lmscope` is the one import root: nothing imports the top-level `telemetry` or `instrumentation`.

Both are symlinks into lmscope/ kept for browsing the repository. Any directory that puts the repository root on
sys.path (`python -m pytest`, `python` started from the root, an IDE) would make `import telemetry._semconv` work
there and fail once lmscope is installed, where no such package exists; worse, the module would load twice, as
`telemetry._semconv` and `lmscope.telemetry._semconv`, each with its own state. This test reads the sources, so it
fails whatever sys.path the run happens to have.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN_ROOTS = frozenset({"telemetry", "instrumentation"})
# A dotted module name in a string, as `monkeypatch.setattr("telemetry._options.X", ...)` or
# `importlib.import_module("instrumentation.dspy")` would spell it.
_DOTTED_NAME = re.compile(r"(telemetry|instrumentation)(\.[A-Za-z_]\w*)+")


def _sources() -> list[Path]:
    # Not rglob over the repository: the symlinked folders would list lmscope's files a second time.
    found = [*(REPO / "lmscope").rglob("*.py"), *(REPO / "tests").rglob("*.py")]
    return sorted(path for path in found if "__pycache__" not in path.parts)


def stray_imports(source: str, filename: str = "<source>") -> list[str]:
    """`line: statement` for each absolute import of a forbidden root, or string naming a module under one."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]  # relative imports (level > 0) resolve inside lmscope
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED_NAME.fullmatch(node.value):
            names = [node.value]
        else:
            continue
        if any(name.split(".")[0] in FORBIDDEN_ROOTS for name in names):
            found.append(f"{node.lineno}: {ast.get_source_segment(source, node) or names}")
    return found


def test_sources_are_found() -> None:
    names = {path.relative_to(REPO).as_posix() for path in _sources()}
    assert "lmscope/telemetry/_internal_errors.py" in names
    assert "tests/test_import_roots.py" in names


@pytest.mark.parametrize("source", [
    "import telemetry._semconv",
    "import instrumentation",
    "import os, telemetry",
    "from telemetry import _semconv",
    "from instrumentation.dspy import DSPyInstrumentor",
    "monkeypatch.setattr('telemetry._options.find_pyproject', None)",
])
def test_a_stray_import_is_caught(source: str) -> None:
    assert stray_imports(source)


@pytest.mark.parametrize("source", [
    "import lmscope.telemetry._semconv",
    "from lmscope.instrumentation.dspy import DSPyInstrumentor",
    "from .telemetry import _semconv",
    "from ...telemetry._internal_errors import report_internal_error",
    "logger.warning('telemetry for this step is incomplete')",
    "import telemetry_extra",
])
def test_an_import_through_lmscope_is_not(source: str) -> None:
    assert not stray_imports(source)


def test_nothing_imports_a_top_level_telemetry_or_instrumentation() -> None:
    offenders = {path.relative_to(REPO).as_posix(): found
                 for path in _sources() if (found := stray_imports(path.read_text(encoding="utf-8"), str(path)))}
    assert not offenders, f"import these through lmscope (lmscope.telemetry, lmscope.instrumentation): {offenders}"
