"""Meter provider setup: which provider lmscope's instruments live on, and its readers.

- `metrics_exporters` names exporters: lmscope builds its own MeterProvider with one reader per exporter
  (`otlp` and `console` push periodically, `prometheus` serves a scrape endpoint). That provider is never
  made the global one: only lmscope's instruments reach its readers, so LiteLLM's or OpenLIT's own GenAI
  metrics (which use the global provider and some of the same names) are never exported, and so never
  counted, twice; and `uninstrument()` can shut it down, which a global provider cannot undo.
- `none` (the default) while the app has set an SDK MeterProvider: lmscope's instruments are created on
  the app's provider, so they go wherever the app sends its metrics (as spans join an app's TracerProvider).
- both: the SDK cannot add a reader to a provider after it is built, so the app's provider cannot take
  lmscope's exporters; lmscope uses its own provider for them and warns once.
- `none` and no app provider: no provider, no instrument, no hook: metrics off costs nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics
from opentelemetry.sdk.resources import SERVICE_NAME

from ._exporters.otlp import grpc_exporter_class
from ._options import DEFAULT, NO_EXPORT, ConfigError, Options, split_host_port, warn_ignored_variable
from ._tracer_provider import build_resource

if TYPE_CHECKING:  # the SDK's metrics package costs ~80 ms to import: only when metrics are on
    from opentelemetry.sdk.metrics import ExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

logger = logging.getLogger("lmscope")
_warned_app_provider = False
_warned_metrics_json = False


@dataclass(eq=False)
class MetricsSetup:
    """What `setup_metrics` chose: the provider lmscope's meter comes from, and what lmscope started."""

    meter_provider: MeterProvider
    owns_provider: bool
    """False when the instruments live on the app's provider (its readers are the app's business)."""
    push_readers: tuple[MetricReader, ...] = ()
    prometheus_server: Any = None
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """(host, port) the scrape endpoint listens on; the real port when `prometheus_endpoint` asked for 0."""
        server = self.prometheus_server
        return None if server is None else server.server_address[:2]

    def meter(self, name: str, version: str | None = None) -> metrics.Meter:
        return self.meter_provider.get_meter(name, version)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Push what the periodic readers (otlp, console) hold. Prometheus pulls: nothing to flush there
        (and a collect outside a scrape would queue a second copy for the next scrape)."""
        return all([reader.force_flush(timeout_millis) for reader in self.push_readers])

    def shutdown(self) -> None:
        """Stop the scrape endpoint, then flush and shut down the provider if it is ours. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.prometheus_server is not None:
            self.prometheus_server.shutdown()
            self.prometheus_server.server_close()
        if self.owns_provider:
            self.meter_provider.shutdown()


def setup_metrics(options: Options, *,
                  get_global: Callable[[], metrics.MeterProvider] = metrics.get_meter_provider) -> MetricsSetup | None:
    """The provider lmscope's metrics go through (see the module docstring), or None when metrics are off."""
    global _warned_app_provider
    app_provider = _app_provider(get_global)
    names = [name for name in options.metrics_exporters if name != NO_EXPORT]
    if not names:
        return None if app_provider is None else MetricsSetup(app_provider, owns_provider=False)
    if app_provider is not None and not _warned_app_provider:
        _warned_app_provider = True
        logger.warning("lmscope: the app's MeterProvider cannot take new metric readers (the SDK fixes them at "
                       "creation); lmscope's metrics go to %s through its own MeterProvider, not through the app's",
                       ", ".join(names))
    # Everything that can raise ConfigError comes first, before any thread or socket exists.
    scrape = "prometheus" in names
    if scrape and options.sources.get("metrics_exporters") == "OTEL_METRICS_EXPORTER" and not _has_prometheus():
        # The standard variable is the deployment's, not lmscope's to reject: a warning, and no scrape endpoint.
        names = [name for name in names if name != "prometheus"]
        warn_ignored_variable("OTEL_METRICS_EXPORTER", os.environ.get("OTEL_METRICS_EXPORTER", ""),
                              "'prometheus' needs opentelemetry-exporter-prometheus, which is not installed (pip "
                              "install 'lmscope[prometheus]')", f"metrics_exporters={tuple(names) or (NO_EXPORT,)}")
        scrape = False
        if not names:
            return None if app_provider is None else MetricsSetup(app_provider, owns_provider=False)
    if scrape:
        _import_prometheus(options)
    exporters = [_push_exporter(name, options) for name in names if name != "prometheus"]
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    prometheus, server = _prometheus_reader(options) if scrape else (None, None)
    push = tuple(PeriodicExportingMetricReader(exporter) for exporter in exporters)
    readers = [*push, *([prometheus] if prometheus is not None else [])]
    provider = MeterProvider(metric_readers=readers, resource=build_resource(options),
                             exemplar_filter=_exemplar_filter(exported=bool(push)))
    return MetricsSetup(provider, owns_provider=True, push_readers=push, prometheus_server=server)


def _exemplar_filter(*, exported: bool) -> ExemplarFilter | None:
    """No exemplars when no reader exports them, unless the deployment asked (None: the SDK's choice, from
    OTEL_METRICS_EXEMPLAR_FILTER, default trace-based).

    The Prometheus exporter writes no exemplars, and the SDK's default samples one for every measurement made in
    a sampled span: about a third of each record's cost (~5 µs of ~15), 11 records per DSPy pipeline call.
    """
    if exported or "OTEL_METRICS_EXEMPLAR_FILTER" in os.environ:
        return None
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    return AlwaysOffExemplarFilter()


def _app_provider(get_global: Callable[[], metrics.MeterProvider]) -> MeterProvider | None:
    """The app's SDK MeterProvider, if it set one as the global provider."""
    sdk = sys.modules.get("opentelemetry.sdk.metrics")
    if sdk is None:  # nobody built an SDK MeterProvider, so the global is not one: no need to import the SDK
        return None
    current = get_global()
    return current if isinstance(current, sdk.MeterProvider) else None


def _push_exporter(name: str, options: Options) -> MetricExporter:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stdout if options.console_stream == "stdout" else sys.stderr)
    return otlp_metric_exporter(options)


def _has_prometheus() -> bool:
    try:
        importlib.import_module("opentelemetry.exporter.prometheus")
    except ImportError:
        return False
    return True


def _import_prometheus(options: Options) -> Any:
    """The exporter module, imported only when `prometheus` is selected; ConfigError with the pip command."""
    try:
        prometheus = importlib.import_module("opentelemetry.exporter.prometheus")
    except ImportError:
        raise ConfigError.for_option(
            "metrics_exporters", "'prometheus' needs opentelemetry-exporter-prometheus, which is not installed",
            options.sources.get("metrics_exporters", DEFAULT),
            "otlp, console, none, or prometheus after pip install 'lmscope[prometheus]'") from None
    return prometheus


def _prometheus_reader(options: Options) -> tuple[MetricReader | None, Any]:
    """A PrometheusMetricReader on a private registry, served on `prometheus_endpoint`.

    A taken port is a fact of the host, not a bad option: lmscope warns and runs on without the endpoint
    rather than stopping the app (as an unreachable collector would not stop it either).
    """
    from prometheus_client import CollectorRegistry, start_http_server

    host, port = split_host_port(options.prometheus_endpoint)
    registry = CollectorRegistry()
    # service_name on every series: the resource alone reaches Prometheus only as a separate target_info.
    reader = _import_prometheus(options).PrometheusMetricReader(
        registry=registry, resource_attribute_filter=SERVICE_NAME.__eq__)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        logger.warning("lmscope: cannot serve Prometheus metrics on %s (%s); lmscope runs on without that "
                       "endpoint (set prometheus_endpoint or LMSCOPE_PROMETHEUS_ENDPOINT)",
                       options.prometheus_endpoint, exc)
        reader.shutdown()
        return None, None
    return reader, server


def _http_metrics_url(endpoint: str | None) -> str | None:
    """The metrics URL for lmscope's OTLP endpoint (one endpoint serves both signals, as the spec's
    OTEL_EXPORTER_OTLP_ENDPOINT does): a bare endpoint or one naming /v1/traces gets /v1/metrics; any
    other path is taken as a base and /v1/metrics is appended to it."""
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)
    base = parts.path.rstrip("/")
    if base.endswith("/v1/traces"):
        base = base[: -len("/v1/traces")]
    return parts._replace(path=base + "/v1/metrics").geturl()


def otlp_metric_exporter(options: Options) -> MetricExporter:
    """An OTLP metric exporter for `options.otlp_metrics_protocol`, sending to `options.otlp_endpoint`.

    With no endpoint the exporter reads OTEL_EXPORTER_OTLP_METRICS_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT
    itself; headers, timeout, compression, certificates and OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
    also come from the exporter's own OTEL_EXPORTER_OTLP_* handling.
    """
    if options.otlp_metrics_protocol == "grpc":
        exporter = grpc_exporter_class("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter",
                                       "otlp_protocol", options.sources.get("otlp_metrics_protocol", DEFAULT))
        made: MetricExporter = exporter(endpoint=options.otlp_endpoint)
        return made
    if options.otlp_metrics_protocol == "http/json":
        _warn_metrics_json(options.sources.get("otlp_metrics_protocol", DEFAULT))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=_http_metrics_url(options.otlp_endpoint))


def _warn_metrics_json(source: str) -> None:
    """Once: http/json is a span transport here; lmscope's metrics go as http/protobuf to the same endpoint."""
    global _warned_metrics_json
    if not _warned_metrics_json:
        _warned_metrics_json = True
        logger.warning("lmscope: otlp_protocol http/json (from %s) applies to spans; lmscope sends metrics over "
                       "OTLP http/protobuf", source)
