"""Telemetry tests read options from the environment: start each from a clean one."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No LMSCOPE_*/OTEL_* variable from the outer shell, and a working directory with no pyproject.toml."""
    for name in list(os.environ):
        if name.startswith(("LMSCOPE_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
