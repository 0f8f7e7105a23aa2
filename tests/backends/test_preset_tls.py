"""A collector's TLS settings stay with the collector.

OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE usually names a private CA and ..._CLIENT_CERTIFICATE/_CLIENT_KEY the
collector's mTLS identity. The OTel HTTP exporter applies them to whatever session it is given, so without care
the Langfuse and MLflow presets would trust only the collector's CA (breaking cloud.langfuse.com, or trusting a
host that CA vouches for) and show the collector's client certificate to Langfuse or MLflow. The presets use
requests' defaults (verify against the default CA bundle, no client certificate); the `otlp` exporter still
honours the variables. What each exporter really uses is read where requests hands a request to the
connection (HTTPAdapter.send), on exports to a local receiver.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lmscope.telemetry._exporters.langfuse import langfuse_span_exporter
from lmscope.telemetry._exporters.mlflow import mlflow_span_exporter
from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._options import resolve_options


@pytest.fixture
def tls_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    """(url, verify, cert) of every request sent, as the connection gets them."""
    sent: list[tuple[str, Any, Any]] = []
    real_send = requests.adapters.HTTPAdapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((request.url, kwargs.get("verify"), kwargs.get("cert")))
        return real_send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests' own variables would change its default
        monkeypatch.delenv(name, raising=False)
    return sent


def _export_one_span(exporter: Any) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("tls-test").start_span("one").end()
    provider.shutdown()


@pytest.mark.parametrize("prefix", ["OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"])
def test_presets_keep_default_tls_while_otlp_honours_the_collector_settings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, receiver, tls_sent, prefix: str) -> None:
    """Fails if a preset's request verifies against the collector CA file or carries its client certificate,
    or if the `otlp` exporter stops using them."""
    files = {}
    for setting in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"):
        path = tmp_path / f"collector-{setting.lower()}.pem"
        path.write_text("dummy, never parsed over http\n")
        monkeypatch.setenv(prefix + setting, str(path))
        files[setting] = str(path)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-tls")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-tls")
    monkeypatch.setenv("LANGFUSE_HOST", receiver.url + "/langfuse")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", receiver.url + "/mlflow")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/collector/v1/traces")

    _export_one_span(langfuse_span_exporter(resolve_options(exporters="langfuse")))
    _export_one_span(mlflow_span_exporter(resolve_options(exporters="mlflow")))
    _export_one_span(otlp_span_exporter(resolve_options(exporters="otlp")))

    by_target = {url.removeprefix(receiver.url).split("/")[1]: (verify, cert) for url, verify, cert in tls_sent}
    assert by_target == {"langfuse": (True, None), "mlflow": (True, None),
                         "collector": (files["CERTIFICATE"], (files["CLIENT_CERTIFICATE"], files["CLIENT_KEY"]))}
    assert len(receiver.requests) == 3  # each export really went out
