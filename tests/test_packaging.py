"""The wheel holds lmscope, all of it and nothing else, and works as a regular (non-editable) install.

setuptools finds the packages itself (`[tool.setuptools.packages.find]`, limited to `lmscope*`): a new subpackage
needs no hand list, and the top-level `telemetry` and `instrumentation` symlinks must not be found as packages
of their own. This test builds the wheel the way a release would and looks inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a wheel build, a venv and a pip install: 4-5 s, and packaging is not the inner loop

REPO = Path(__file__).resolve().parent.parent
DATA_FILES = frozenset({"lmscope/py.typed"})
"""Files of the package that are not Python modules (package-data in pyproject.toml)."""
ENTRY_POINT = "lmscope = lmscope._cli:main"


def _run(args: list[str | Path], cwd: Path) -> str:
    """Run a command with no PYTHON* variable from the outer shell (PYTHONPATH would defeat the isolation)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _source_files() -> set[str]:
    """Every module and data file under lmscope/, as paths inside the wheel."""
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "lmscope").rglob("*.py")
               if "__pycache__" not in path.parts}
    return modules | DATA_FILES


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline with the test venv's setuptools (the dev extra has it) from a copy of the tree.

    Why a copy: setuptools writes build/ and lmscope.egg-info/ next to pyproject.toml, and files a stale build/lib
    still holds (from an older layout, say) end up in the wheel; a copy keeps the working tree as it was and
    the build clean. Symlinks are copied as symlinks, as a clone has them.
    """
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
    out = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
          "--wheel-dir", out, source], cwd=root)
    (built,) = out.glob("lmscope-*.whl")
    return built


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def test_the_wheel_holds_every_module_and_data_file_of_lmscope(wheel: Path) -> None:
    package = {name for name in _names(wheel) if name.startswith("lmscope/")}
    expected = _source_files()
    assert {"lmscope/py.typed", "lmscope/_bootstrap/sitecustomize.py", "lmscope/semconv.py",
            "lmscope/telemetry/__init__.py", "lmscope/instrumentation/dspy/__init__.py"} <= expected
    assert not expected - package, f"missing from the wheel: {sorted(expected - package)}"
    assert not package - expected, f"in the wheel but not in lmscope/ (stale build?): {sorted(package - expected)}"


def test_the_wheel_has_nothing_else_at_the_top_level(wheel: Path) -> None:
    top = {name.split("/")[0] for name in _names(wheel)}
    dist_info = wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"
    # No `telemetry` or `instrumentation` package, no tests, dashboards, benchmarks or deploy files, no .data.
    assert top == {"lmscope", dist_info}
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{dist_info}/top_level.txt").decode().split() == ["lmscope"]
        assert ENTRY_POINT in archive.read(f"{dist_info}/entry_points.txt").decode()


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed the regular way; returns its python.

    The venv does not see the base interpreter's site-packages (no --system-site-packages). Its dependencies come
    from the test venv, reused instead of downloaded: a .pth file lists the test venv's site-packages as a plain
    path entry. Python runs the .pth files of site directories only, not of a path a .pth file adds, so the
    test venv's editable lmscope (an import hook its own .pth file installs) stays off, and the venv's
    site-packages, holding the wheel's lmscope, comes first on sys.path anyway.
    """
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)  # pip runs from the test venv below
    python = venv / "bin" / "python"
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              cwd=venv).strip())
    shared = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "_lmscope_test_dependencies.pth").write_text("".join(f"{path}\n" for path in shared))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel],
         cwd=venv)
    return python


# Imports every module of the installed lmscope (not __main__, which runs the CLI, nor the _bootstrap
# sitecustomize, which instruments the process), then prints where lmscope came from and what else is importable.
_IMPORT_ALL = """
import importlib, importlib.util, pkgutil, lmscope
from importlib.resources import files
for module in pkgutil.walk_packages(lmscope.__path__, "lmscope."):
    if module.name != "lmscope.__main__" and not module.name.startswith("lmscope._bootstrap"):
        importlib.import_module(module.name)
assert files("lmscope").joinpath("py.typed").is_file()
assert files("lmscope").joinpath("_bootstrap", "sitecustomize.py").is_file()
print(lmscope.__file__)
print(importlib.util.find_spec("telemetry"), importlib.util.find_spec("instrumentation"))
"""


def test_the_installed_wheel_imports_every_module(installed: Path, tmp_path: Path) -> None:
    # -I: neither the current directory nor PYTHON* variables on sys.path; only the venv and what its .pth adds.
    location, top_level = _run([installed, "-I", "-c", _IMPORT_ALL], cwd=tmp_path).splitlines()
    assert Path(location).is_relative_to(installed.parent.parent), f"lmscope imported from {location}, not the venv"
    assert "site-packages" in Path(location).parts
    assert top_level == "None None", "a top-level telemetry or instrumentation package is importable"


def test_import_lmscope_works_from_the_repo_root_with_a_regular_install(installed: Path) -> None:
    # From the repository root the source tree's lmscope/ comes first on sys.path (the current directory does)
    # and shadows the installed one: it must be importable on its own, as it is where every tool looks.
    location = _run([installed, "-c", "import lmscope, lmscope.instrumentation.dspy; print(lmscope.__file__)"],
                    cwd=REPO).strip()
    assert Path(location) == REPO / "lmscope" / "__init__.py"
