"""The `mlflow` preset: OTLP/HTTP to an `mlflow server`'s `/v1/traces`, filed under one experiment.

Where it sends: `{mlflow_tracking_uri}/v1/traces` (argument > LMSCOPE_MLFLOW_TRACKING_URI > MLFLOW_TRACKING_URI >
pyproject > http://localhost:5000), with `x-mlflow-experiment-id` from `mlflow_experiment_id` (MLFLOW_EXPERIMENT_ID),
else the experiment named by `mlflow_experiment_name` (MLFLOW_EXPERIMENT_NAME, created if missing), else the
Default experiment "0". Auth as MLflow's own client: MLFLOW_TRACKING_TOKEN (Bearer), or
MLFLOW_TRACKING_USERNAME with MLFLOW_TRACKING_PASSWORD (Basic).

What MLflow reads (its OTel translators, applied when spans are stored): `openinference.span.kind` gives the
span type (CHAIN, RETRIEVER, LLM, ...), `gen_ai.usage.*` the per-span token usage that it sums per trace,
`session.id`/`user.id` on the root span the trace's session and user. OpenInference would make an LM call a
plain LLM span, so chat calls get MLflow's own `mlflow.spanType` = CHAT_MODEL. Module spans carry only
`lmscope.usage.*` roll-ups, which MLflow does not add again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import _semconv as semconv
from .._options import DEFAULT, ConfigError, Options
from .._scrub import scrub_error_text
from .._url_masking import mask_url
from .endpoints import MLFLOW_OTLP_TRACES_PATH
from .mlflow_experiment import DEFAULT_EXPERIMENT_ID, ExperimentUnavailable, resolve_experiment_id
from .otlp_http import pinned_otlp_http_exporter
from .span_rewrite import AttributeAddingExporter

logger = logging.getLogger("lmscope")

EXPERIMENT_HEADER = "x-mlflow-experiment-id"
SPAN_TYPE = "mlflow.spanType"
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def mlflow_auth_headers(options: Options) -> dict[str, str]:
    """The Authorization header MLflow's client would send, or none; a half-given login is a ConfigError."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    username = os.environ.get(USERNAME_ENV, "").strip()
    password = os.environ.get(PASSWORD_ENV, "").strip()
    if bool(username) != bool(password):
        missing = PASSWORD_ENV if username else USERNAME_ENV
        raise ConfigError.for_option(
            "exporters", f"'mlflow' has {USERNAME_ENV if username else PASSWORD_ENV} but {missing} is not set",
            options.sources.get("exporters", DEFAULT),
            f"both {USERNAME_ENV} and {PASSWORD_ENV}, or {TOKEN_ENV}, or none for a server without auth")
    if username:
        return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
    return {}


def mlflow_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    if (attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM
            and attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.GEN_AI_OPERATION_CHAT):
        # JSON-encoded, as MLflow stores every attribute; it keeps an explicit span type as sent.
        return {SPAN_TYPE: json.dumps("CHAT_MODEL")}
    return {}


class ExperimentSpanExporter(SpanExporter):
    """Resolves the experiment id at the first export, then posts OTLP with it; retries while unresolved."""

    def __init__(self, tracking_uri: str, headers: Mapping[str, str], experiment_id: Callable[[], str]) -> None:
        self._url = self.endpoint = tracking_uri.rstrip("/") + MLFLOW_OTLP_TRACES_PATH
        self._headers = dict(headers)
        self._experiment_id = experiment_id
        self._where = mask_url(tracking_uri)
        self._inner: SpanExporter | None = None
        self._lock = threading.Lock()

    def _connect(self) -> SpanExporter | None:
        with self._lock:
            if self._inner is None:
                try:
                    experiment_id = self._experiment_id()
                except (ExperimentUnavailable, KeyError, TypeError) as problem:
                    # Every time: the export guard turns it into one warning per outage and the exit report's reason.
                    logger.warning("lmscope: mlflow: cannot get the experiment id from %s (%s); spans are "
                                   "dropped until it answers", self._where, scrub_error_text(str(problem)))
                    return None
                self._inner = pinned_otlp_http_exporter(self._url, {**self._headers, EXPERIMENT_HEADER: experiment_id})
            return self._inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        inner = self._inner or self._connect()
        return inner.export(spans) if inner is not None else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis) if self._inner is not None else True

    def shutdown(self) -> None:
        if self._inner is not None:
            self._inner.shutdown()


def mlflow_span_exporter(options: Options) -> SpanExporter:
    headers = mlflow_auth_headers(options)
    uri = options.mlflow_tracking_uri
    given_id, name = options.mlflow_experiment_id, options.mlflow_experiment_name
    experiment_id: Callable[[], str]
    if given_id is None and name is not None:
        experiment_id = partial(resolve_experiment_id, uri, headers, name)
    else:  # an id beats a name, as it names one experiment for sure
        experiment_id = partial(str, given_id or DEFAULT_EXPERIMENT_ID)
    return AttributeAddingExporter(ExperimentSpanExporter(uri, headers, experiment_id), mlflow_attributes)
