"""`lmscope run`: the app's own sitecustomize still runs, and only the direct Python process is instrumented
unless `--children` asks for every one it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("clean_env")

PARENT = textwrap.dedent("""
    import os, subprocess, sys
    import lmscope
    print("parent", lmscope.active() is not None, flush=True)
    child = "import os, lmscope; print('child', lmscope.active() is not None, os.environ.get('PYTHONPATH'), flush=True)"
    subprocess.run([sys.executable, "-c", child], check=True)
""")


def lmscope_run(*args: str, pythonpath: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "lmscope", "run", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def own_pythonpath() -> str:
    return os.pathsep.join(p for p in sys.path if p)


def test_the_apps_own_sitecustomize_still_runs(tmp_path: Path) -> None:
    site_dir = tmp_path / "appsite"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text("import sys\nMARK = 'app site'\nprint('app sitecustomize ran')\n")
    pythonpath = os.pathsep.join([str(site_dir), own_pythonpath()])
    done = lmscope_run("--exporters", "none", "--", sys.executable, "-c",
                       "import sitecustomize, lmscope; print(sitecustomize.MARK, lmscope.active() is not None)",
                       pythonpath=pythonpath)
    assert done.returncode == 0, done.stderr
    # The first line comes from the `lmscope` command's own interpreter, which has the same PYTHONPATH.
    assert done.stdout.splitlines() == ["app sitecustomize ran", "app sitecustomize ran", "app site True"]


def test_only_the_direct_process_is_instrumented_by_default(tmp_path: Path) -> None:
    pythonpath = own_pythonpath()
    done = lmscope_run("--exporters", "none", "--", sys.executable, "-c", PARENT, pythonpath=pythonpath)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["parent True", f"child False {pythonpath}"]


def test_children_asks_for_every_python_process(tmp_path: Path) -> None:
    done = lmscope_run("--exporters", "none", "--children", "--", sys.executable, "-c", PARENT,
                       pythonpath=own_pythonpath())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "parent True"
    assert done.stdout.splitlines()[1].startswith("child True ")


def test_a_child_process_gets_no_lmscope_line_on_its_stderr(tmp_path: Path) -> None:
    """A bad option is reported by the instrumented process only, not by every Python process it starts."""
    done = lmscope_run("--", sys.executable, "-c", PARENT, pythonpath=own_pythonpath(),
                       extra_env={"LMSCOPE_EXPORTERS": "jagger"})
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "lmscope" in line] == [
        line for line in done.stderr.splitlines() if line.startswith("lmscope run: instrumentation is off")]
    assert len([line for line in done.stderr.splitlines() if "lmscope" in line]) == 1
    assert done.stdout.splitlines() == ["parent False", f"child False {own_pythonpath()}"]


def test_a_bad_exporter_name_stops_lmscope_run_before_the_program_starts(tmp_path: Path) -> None:
    """Checked up front, named as the user gave it: in the program's process the same value would only leave the
    program untraced, with an error naming LMSCOPE_EXPORTERS, a variable the user never set."""
    marker = tmp_path / "ran"
    done = lmscope_run("--exporters", "consol", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')",
                       pythonpath=own_pythonpath())
    assert done.returncode == 1 and not marker.exists()
    assert done.stderr == ("lmscope run: exporters: unknown exporter 'consol' (from --exporters); allowed: console, "
                           "file, otlp, jaeger, langfuse, mlflow, phoenix, none\n")
