"""Shared test harness: offline DSPy, a real stand-in LM server, in-memory spans.

DSPy reads DSPY_CACHEDIR and LiteLLM reads LITELLM_LOCAL_MODEL_COST_MAP when first imported, so both are
set here, before any test module imports dspy.
"""

from __future__ import annotations

import os
import tempfile

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="lmscope-test-dspy-cache-"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lm_server():
    from lmscope._lm_server import StandInLM

    with StandInLM() as server:
        yield server
