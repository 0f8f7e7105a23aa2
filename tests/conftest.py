"""Shared test harness: offline DSPy, a real stand-in LM server, local OTLP backends, metric readers.

DSPy reads DSPY_CACHEDIR and LiteLLM reads LITELLM_LOCAL_MODEL_COST_MAP when first imported, so both are
set here, before any test module imports dspy.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
if "DSPY_CACHEDIR" not in os.environ:
    os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="lmscope-test-dspy-cache-")
    atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest  # noqa: E402


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No LMSCOPE_/OTEL_/LANGFUSE_/MLFLOW_ variable from the outer shell; cwd is tmp_path, no pyproject.toml above.

    Option tests use it for every test (autouse in their module or folder) and get tmp_path back.
    """
    from lmscope.telemetry._options import find_pyproject

    for name in list(os.environ):
        if name.startswith(("LMSCOPE_", "OTEL_", "LANGFUSE_", "MLFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert find_pyproject(tmp_path) is None
    return tmp_path


@pytest.fixture(scope="session")
def lm_server():
    from lmscope._lm_server import StandInLM

    with StandInLM() as server:
        yield server


def _metric_series(reader):
    """{metric name: {frozenset(attribute items): value}} from one collect of `reader`; a counter's value is
    its sum, a histogram's is (count, sum). Metrics with no point are absent."""
    found = {}
    data = reader.get_metrics_data()
    for resource_metrics in (data.resource_metrics if data is not None else ()):
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                series = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    value = (point.count, point.sum) if hasattr(point, "bucket_counts") else point.value
                    series[frozenset(point.attributes.items())] = value
    return found


@pytest.fixture
def metric_series():
    return _metric_series


# --- local OTLP backends (tests/otlp_servers.py), shared by the exporter and resilience tests ----------


def _load_helper(name: str):
    """Load tests/<name>.py as module `name`: with --import-mode=importlib, tests/ is not on sys.path."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


otlp_servers = _load_helper("otlp_servers")
_load_helper("span_attributes")


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A working OTLP/HTTP receiver on 127.0.0.1 (see tests/otlp_servers.py)."""
    with otlp_servers.OtlpReceiver() as server:
        yield server


@pytest.fixture
def second_receiver() -> Iterator[Any]:
    with otlp_servers.OtlpReceiver() as server:
        yield server


@pytest.fixture
def grpc_receiver() -> Iterator[Any]:
    """A working OTLP/gRPC receiver on 127.0.0.1."""
    with otlp_servers.OtlpGrpcReceiver() as server:
        yield server


@pytest.fixture
def otlp_receiver_process():
    """A working OTLP/HTTP receiver in its own process, for span volumes an in-process one would slow down."""
    with otlp_servers.OtlpReceiverProcess() as receiver:
        yield receiver


@pytest.fixture
def failing_backend():
    """An OTLP/HTTP endpoint that answers every export with 500."""
    with otlp_servers.StatusServer(500) as server:
        yield server


@pytest.fixture
def hanging_backend():
    """An OTLP/HTTP endpoint that accepts connections and never answers."""
    with otlp_servers.HangingServer() as server:
        yield server
