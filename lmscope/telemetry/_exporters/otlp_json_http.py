"""OTLP/HTTP with JSON bodies (`otlp_protocol="http/json"`): the spec's third transport, which the SDK lacks.

Bodies are `ExportTraceServiceRequest`s in lmscope's OTLP/JSON encoding (otlp_json.py: hex ids, enums as
integers, 64-bit integers as strings), POSTed as `application/json` to `{endpoint}/v1/traces`. The standard
variables mean what they mean for the SDK's http/protobuf exporter: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT,
_HEADERS, _TIMEOUT (seconds, default 10), _COMPRESSION (gzip, deflate, none), _CERTIFICATE, _CLIENT_CERTIFICATE
and _CLIENT_KEY. Like the SDK's exporter, a 429, 502, 503 or 504 answer or a lost connection is retried with
exponential backoff while the timeout allows; anything else fails the batch at once. Log lines follow the SDK's
wording, which lmscope's export guard (`GuardedExporter`) turns into its one warning per outage.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

from .._options import warn_ignored_variable
from .otlp_json import encode_spans

_logger = logging.getLogger(__name__)

_DEFAULT_BASE = "http://localhost:4318"
_DEFAULT_TIMEOUT_S = 10.0
_jitter = random.Random()
"""The retry waits' jitter, drawn apart from `random`'s global state: exporting never moves the app's seeded
sequence. Seeded again in a forked child, as the global one is, so that workers retry apart, not in step."""
if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_jitter.seed)
_RETRYABLE = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 6
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress}


def _env(name: str) -> tuple[str, str]:
    """(variable, value) of OTEL_EXPORTER_OTLP_TRACES_<name>, else OTEL_EXPORTER_OTLP_<name>, else ('', '')."""
    for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(variable, "").strip()
        if value:
            return variable, value
    return "", ""


def _timeout() -> float:
    variable, raw = _env("TIMEOUT")
    if not raw:
        return _DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value > 0:
        return value
    warn_ignored_variable(variable, raw, "not a positive number of seconds",
                          f"the default timeout of {_DEFAULT_TIMEOUT_S:g} s")
    return _DEFAULT_TIMEOUT_S


def _compression() -> str | None:
    variable, raw = _env("COMPRESSION")
    name = raw.lower() or "none"
    if name != "none" and name not in _COMPRESSORS:
        warn_ignored_variable(variable, raw, "not a compression lmscope knows (gzip, deflate, none)",
                              "no compression")
    return name if name in _COMPRESSORS else None


def _endpoint(endpoint: str | None) -> str:
    """`endpoint` as given, else the spec's rule: the traces variable as is, or the generic one + /v1/traces."""
    if endpoint:
        return endpoint
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_BASE
    return base.rstrip("/") + "/v1/traces"


class OtlpJsonHttpSpanExporter(SpanExporter):
    """POSTs each batch as one OTLP/JSON request; never raises; `shutdown` ends a backoff at once."""

    def __init__(self, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
                 timeout: float | None = None, compression: str | None = None,
                 session: requests.Session | None = None) -> None:
        self._endpoint = _endpoint(endpoint)
        self._timeout = timeout if timeout is not None else _timeout()
        self._compression = compression if compression is not None else _compression()
        self._headers = {"content-type": "application/json"}
        self._headers.update(parse_env_headers(_env("HEADERS")[1], liberal=True))
        self._headers.update({key.lower(): value for key, value in (headers or {}).items()})
        if self._compression is not None:
            self._headers["content-encoding"] = self._compression
        self._session = session or requests.Session()
        certificate, client_certificate, client_key = (_env(name)[1] for name in ("CERTIFICATE", "CLIENT_CERTIFICATE",
                                                                                  "CLIENT_KEY"))
        if certificate:
            self._session.verify = certificate
        if client_certificate:
            self._session.cert = (client_certificate, client_key) if client_key else client_certificate
        self._shutdown = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown.is_set():
            _logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        try:
            body = json.dumps(encode_spans(spans), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if self._compression is not None:
                body = _COMPRESSORS[self._compression](body)
        except Exception as exc:  # noqa: BLE001 - an exporter must never raise into the SDK thread
            _logger.error("Failed to encode span batch: %s", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self._post(body) else SpanExportResult.FAILURE

    def _post(self, body: bytes) -> bool:
        deadline = time.monotonic() + self._timeout
        for attempt in range(_MAX_ATTEMPTS):
            status: int | None = None
            try:
                answer = self._session.post(self._endpoint, data=body, headers=self._headers,
                                            timeout=max(deadline - time.monotonic(), 0.001))
            except requests.ConnectionError as exc:
                reason: object = exc
            except Exception as exc:  # noqa: BLE001 - a timeout or a bad URL: not worth retrying
                _logger.error("Failed to export span batch code: %s, reason: %s", None, exc)
                return False
            else:
                status, reason = answer.status_code, answer.reason
                if 200 <= status < 300:
                    return True
                if status not in _RETRYABLE:
                    _logger.error("Failed to export span batch code: %s, reason: %s", status, reason)
                    return False
            backoff = 2**attempt * _jitter.uniform(0.8, 1.2)
            if attempt + 1 == _MAX_ATTEMPTS or backoff > deadline - time.monotonic() or self._shutdown.is_set():
                _logger.error("Failed to export span batch due to timeout, max retries or shutdown.")
                return False
            _logger.warning("Transient error %s encountered while exporting span batch, retrying in %.2fs.",
                            f"code: {status}, reason: {reason}" if status is not None else reason, backoff)
            if self._shutdown.wait(backoff):
                _logger.warning("Shutdown in progress, aborting retry.")
                return False
        return False

    def shutdown(self) -> None:
        self._shutdown.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here
