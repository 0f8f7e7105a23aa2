"""Shared test harness: offline DSPy, a real stand-in LM server, local OTLP backends, metric readers.

DSPy reads DSPY_CACHEDIR and LiteLLM reads LITELLM_LOCAL_MODEL_COST_MAP when first imported, so both are
set here, before any test module imports dspy.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
if "DSPY_CACHEDIR" not in os.environ:
    os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="lmscope-test-dspy-cache-")
    atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# lmscope re-raises its own faults while a test of this suite runs (and in the apps its tests start), instead of
# logging them as it does in an app: lmscope/telemetry/_internal_errors.py.
os.environ["LMSCOPE_RAISE_INTERNAL_ERRORS"] = "1"
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest

# A test that starts a real server or browser, or runs an app in an old DSPy release's venv, gets its marker from
# the fixture that starts it, so a new test using the fixture cannot forget it. Those tests, and any marked so by
# hand (promtool), are `slow` as well: `pytest -m "not slow"` is the fast loop. The markers are declared in
# pyproject.toml.
_MARKER_OF_FIXTURE = {"mlflow_server": "mlflow", "phoenix_server": "phoenix", "start_prometheus": "prometheus",
                      "chromium": "chromium", "old_dspy_python": "dspy_matrix"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # `fixturenames` includes the fixtures a fixture asks for: `run` -> `start_prometheus` counts.
        for fixture in _MARKER_OF_FIXTURE.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(_MARKER_OF_FIXTURE[fixture])
        if any(item.get_closest_marker(name) for name in _MARKER_OF_FIXTURE.values()):
            item.add_marker("slow")
        # The DSPy engine a test ran on, as a property of its `--junitxml` testcase: .ci/dspy_matrix.py counts
        # results per engine from it (a test id's `[litellm]` can be another parameter's value).
        engine = getattr(item, "callspec", None) and item.callspec.params.get("engine")
        if isinstance(engine, str):
            item.user_properties.append(("dspy.engine", engine))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No LMSCOPE_/OTEL_/OPENINFERENCE_/LANGFUSE_/MLFLOW_/PHOENIX_ variable from the outer shell; cwd is tmp_path,
    no pyproject.toml above; no option warning given yet (lmscope warns once per process about a standard variable
    it ignores).

    Option tests use it for every test (autouse in their module or folder) and get tmp_path back.
    """
    from lmscope.telemetry import _internal_errors, _options
    from lmscope.telemetry._options import find_pyproject

    monkeypatch.setattr(_options, "_warned", set())

    for name in list(os.environ):
        if name.startswith(("LMSCOPE_", "OTEL_", "OPENINFERENCE_", "LANGFUSE_", "MLFLOW_", "PHOENIX_")) \
                and name != _internal_errors.RAISE_VARIABLE:  # not an option: this suite's own switch
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert find_pyproject(tmp_path) is None
    return tmp_path


@pytest.fixture
def swallow_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that forces a fault inside lmscope on purpose: the fault is logged and swallowed, as in a user's
    app, instead of re-raised (lmscope/telemetry/_internal_errors.py re-raises in this suite's tests, so that any other
    fault fails the test that caused it). "Logged once per place" is per process: this test starts afresh."""
    from lmscope.telemetry import _internal_errors

    monkeypatch.setattr(_internal_errors, "reraise_under_pytest", False)
    monkeypatch.setattr(_internal_errors, "_reported", set())


@pytest.fixture(scope="session")
def lm_server():
    from lmscope._lm_server import StandInLM

    with StandInLM() as server:
        yield server


@pytest.fixture
def server():
    """A fresh stand-in LM server of the test's own (its counters start at 0)."""
    from lmscope._lm_server import StandInLM

    with StandInLM() as stand_in:
        yield stand_in


@pytest.fixture
def http(server):
    """An httpx client on `server`'s base URL."""
    import httpx

    with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer sk-anything"}) as client:
        yield client


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


# pytest's default import mode puts the folder of each conftest and test file without an __init__.py on
# sys.path (tests/ here, never the repository root, whose `telemetry` and `instrumentation` symlinks would
# otherwise import as top-level packages): the helpers of tests/ import as plain modules, as benchmarks do.
import otlp_servers  # noqa: E402


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
