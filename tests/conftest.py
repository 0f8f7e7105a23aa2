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
