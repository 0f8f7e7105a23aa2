"""`instrument()` / `uninstrument()`: options -> exporters -> tracer provider -> library patches."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _signals
from ._signals import SignalFlush
from ._version import __version__
from .telemetry import _semconv as semconv
from .telemetry._internal_errors import guarded, report_internal_error
from .telemetry._options import ARGUMENT, ConfigError, Options, resolve_options
from .telemetry._scrub_match import ScrubCallback

if TYPE_CHECKING:  # imported when instrument() runs: `import lmscope` stays light (no SDK exporters, no wrapt)
    from opentelemetry.trace import TracerProvider

    from .instrumentation.dspy import DSPyInstrumentor
    from .telemetry._content import ContentPolicy
    from .telemetry._metrics import MetricsRecorder
    from .telemetry._metrics_setup import MetricsSetup
    from .telemetry._tracer_provider import TracingSetup

logger = logging.getLogger("lmscope")
_lock = threading.Lock()
_active: Instrumentation | None = None


def _renew_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have been instrumenting (lmscope/telemetry/_fork.py)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_lock_in_child)


class Instrumentation:
    """The handle `instrument()` returns: what is on, and how to flush or undo it.

    Read-only facts (`service_name`, `exporters`, `metrics_exporters`, `file_path`, `tracer_provider`,
    `prometheus_address`) and two actions (`force_flush`, `uninstrument`); everything else is internal.
    """

    def __init__(self, options: Options, tracing: TracingSetup, metrics: MetricsSetup | None = None,
                 content: ContentPolicy | None = None) -> None:
        self._options = options
        if content is None:
            from .telemetry._content import ContentPolicy

            content = ContentPolicy.capturing(options.capture_content)
        self._content = content
        self._tracing = tracing
        self._metrics = metrics
        """None when metrics are off (no exporter and no app MeterProvider): then no metric hook runs at all."""
        self._metrics_recorder: MetricsRecorder | None = None
        if metrics is not None:
            from .telemetry._metrics import MetricsRecorder

            self._metrics_recorder = MetricsRecorder(metrics.meter(semconv.METER_NAME, __version__), content)
        from .instrumentation.dspy import DSPyInstrumentor

        self._dspy: DSPyInstrumentor = DSPyInstrumentor()  # the process's one instance (a BaseInstrumentor)
        self._owns_dspy = False
        """True once this handle's instrument() patched DSPy: only then does its uninstrument() undo the patches."""
        self._owns_litellm = False
        """Likewise for LiteLLM's functions (patched when the app imports litellm)."""
        self._restore_thread_pools: Callable[[], None] | None = None
        """Puts `ThreadPoolExecutor.submit` back (`instrumentation/_thread_pools.py`)."""
        self._live = True

    @property
    def service_name(self) -> str:
        """`service.name` of the spans lmscope exports now: the resource of the provider they go through (the app's
        once lmscope follows it), else the one lmscope was configured with."""
        return self._tracing.service_name or self._options.service_name

    @property
    def exporters(self) -> tuple[str, ...]:
        """The span exporters in use (`console`, `file`, `otlp`, `jaeger`, `langfuse`, `mlflow`, or `none`)."""
        return self._options.exporters

    @property
    def metrics_exporters(self) -> tuple[str, ...]:
        """The metric exporters in use (`otlp`, `prometheus`, `console`, or `none`)."""
        return self._options.metrics_exporters

    @property
    def file_path(self) -> str | None:
        """Where the `file` exporter writes its OTLP/JSON lines; None when that exporter is off."""
        return self._options.file_path if "file" in self._options.exporters else None

    @property
    def tracer_provider(self) -> TracerProvider:
        """The provider lmscope's spans go through now: the app's global one once it set one (an SDK provider, or
        Logfire's), before that lmscope's own (never set as the global one)."""
        return self._tracing.tracer_provider

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """(host, port) of the Prometheus scrape endpoint lmscope serves; None when that exporter is off."""
        return self._metrics.prometheus_address if self._metrics is not None else None

    def _instrument_dspy(self, _module: object = None) -> None:
        # Runs when dspy is imported, or at once if it already was: never imports it for the app.
        if not self._live:
            return
        recorder = self._metrics_recorder
        if self._dspy.is_instrumented_by_opentelemetry:
            # The one DSPyInstrumentor of the process is on already: `opentelemetry-instrument` loaded it, or the app
            # instrumented it. Its spans go to the global TracerProvider (which holds lmscope's processors, and they
            # pass its scope); patching twice would duplicate every span, and undoing its patches is not ours to do.
            logger.info("lmscope: DSPy is instrumented already (by opentelemetry-instrument or the app's own "
                        "DSPyInstrumentor); lmscope.instrument() leaves it as it is")
            return
        from .instrumentation.dspy import TRACER_NAME as DSPY_TRACER_NAME

        try:
            # No dependency check: a DSPy of another version is tried all the same, and left untraced if it fails.
            self._dspy.instrument(tracer=self._tracing.tracer(DSPY_TRACER_NAME, __version__),
                                  capture_content=self._content, skip_dep_check=True,
                                  lm_call_listeners=() if recorder is None else (recorder.record_lm_call,),
                                  module_listeners=() if recorder is None else (recorder.record_module,),
                                  evaluation_listeners=() if recorder is None else (recorder.record_evaluation,))
            self._owns_dspy = True
        except Exception as exc:  # noqa: BLE001 - raised here it would come out of the app's `import dspy`
            # A DSPy whose layout we do not know, say: leave it untraced and exactly as it was, never broken.
            report_internal_error("instrumenting dspy (DSPy runs untraced)", exc)
            dspy = self._dspy
            guarded("undoing a partial dspy instrumentation",
                    dspy.uninstrument if dspy.is_instrumented_by_opentelemetry else dspy._unpatch)

    def _instrument_litellm(self) -> None:
        """LiteLLM's own calls (an app that calls `litellm.completion` itself), patched when the app imports it."""
        from .instrumentation.litellm import TRACER_NAME, LiteLLMInstrumentor

        litellm = LiteLLMInstrumentor()
        if litellm.is_instrumented_by_opentelemetry:
            return  # `opentelemetry-instrument` or the app instrumented it: its spans reach our processors already
        recorder = self._metrics_recorder
        try:
            litellm.instrument(tracer=self._tracing.tracer(TRACER_NAME, __version__), capture_content=self._content,
                               skip_dep_check=True,
                               lm_call_listeners=() if recorder is None else (recorder.record_lm_call,))
            self._owns_litellm = True
        except Exception as exc:  # noqa: BLE001 - LiteLLM stays untraced, never broken
            report_internal_error("instrumenting litellm (LiteLLM runs untraced)", exc)

    def _carry_context_into_thread_pools(self) -> None:
        """Tasks on the app's own thread pools stay in the trace and the `track()` block that submitted them."""
        from .instrumentation._thread_pools import carry_context_into_thread_pools

        try:
            self._restore_thread_pools = carry_context_into_thread_pools()
        except Exception as exc:  # noqa: BLE001 - the pools then run as they always did
            report_internal_error("carrying context into thread pools", exc)

    def _signal_flush(self) -> SignalFlush:
        from .telemetry._batch_export import SHUTDOWN_TIMEOUT_S

        tracing = self._tracing
        return SignalFlush(flush=lambda: tracing.force_flush(int(SHUTDOWN_TIMEOUT_S * 1000)),
                           shutdown=tracing.shutdown, locks=tracing.locks,
                           shutting_down=lambda: tracing.shutting_down,
                           call_after_shutdown=tracing.call_after_shutdown)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span and push metrics now; True when every exporter confirmed in time."""
        flushed = [self._tracing.force_flush(timeout_millis)]
        if self._metrics is not None:
            flushed.append(self._metrics.force_flush(timeout_millis))
        return all(flushed)

    def uninstrument(self) -> None:
        """Flush, shut the exporters down and put DSPy back exactly as it was (`lmscope.uninstrument()`)."""
        global _active
        with _lock:
            if _active is self:  # a later instrument() then starts afresh
                _active = None
            if not self._live:
                return
            self._live = False
        _signals.uninstall()
        if self._owns_dspy:
            self._owns_dspy = False
            self._dspy.uninstrument()
        if self._owns_litellm:
            from .instrumentation.litellm import LiteLLMInstrumentor

            self._owns_litellm = False
            LiteLLMInstrumentor().uninstrument()
        if self._restore_thread_pools is not None:
            self._restore_thread_pools()
            self._restore_thread_pools = None
        self._tracing.shutdown()
        if self._metrics is not None:
            self._metrics.shutdown()

    def __repr__(self) -> str:
        return (f"<lmscope instrumentation exporters={list(self.exporters)} "
                f"metrics_exporters={list(self.metrics_exporters)} service={self.service_name!r}>")


def instrument(*, service_name: str | None = None, exporters: Sequence[str] | str | None = None,
               file_path: str | os.PathLike[str] | None = None, otlp_endpoint: str | None = None,
               otlp_protocol: str | None = None, capture_content: bool | None = None,
               console_stream: str | None = None, max_queue_size: int | None = None,
               metrics_exporters: Sequence[str] | str | None = None,
               prometheus_endpoint: str | None = None,
               jaeger_endpoint: str | None = None, jaeger_protocol: str | None = None,
               langfuse_host: str | None = None, mlflow_tracking_uri: str | None = None,
               mlflow_experiment_id: str | None = None, mlflow_experiment_name: str | None = None,
               phoenix_endpoint: str | None = None,
               scrub: bool | None = None, scrub_patterns: Sequence[str] | None = None,
               scrub_callback: ScrubCallback | None = None, max_content_chars: int | None = None,
               export_all_spans: bool | None = None) -> Instrumentation:
    """Trace DSPy programs: every module step, LM call, cache hit, retrieval and tool call becomes a span.

    Every option left as None comes from `LMSCOPE_<NAME>`, then the standard variables that mean the same
    (`OTEL_*`, `LANGFUSE_BASE_URL`/`LANGFUSE_HOST`, `MLFLOW_*`, `PHOENIX_COLLECTOR_ENDPOINT`), then
    `[tool.lmscope]` in the app's pyproject.toml, then the default. `exporters`: console (default), file, otlp,
    jaeger, langfuse, mlflow, phoenix, or none; several at once each get every span. An option is read only when
    a chosen exporter uses it (`file_path` by file, `otlp_*` by otlp, `max_queue_size` by the batching exporters,
    `jaeger_*`, `langfuse_host`, `mlflow_*`, `phoenix_endpoint` by their preset); credentials are never
    arguments: Langfuse keys come from LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY or the app's own Langfuse
    client, MLflow's from MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD, Phoenix's from PHOENIX_API_KEY (its
    project from PHOENIX_PROJECT_NAME). A bad argument, LMSCOPE_* or
    `[tool.lmscope]` value or missing credentials raise `lmscope.ConfigError` naming the option, the value and
    what is allowed; a standard or other tool's variable lmscope cannot use is one warning (the next layer or the
    default is used), and so is a pyproject.toml that cannot be read; a backend that is merely down raises
    nothing. `otlp_protocol`: http/protobuf (default), grpc or http/json (spans; metrics go as http/protobuf).
    Calling it again returns the active handle unchanged.

    lmscope never sets the global TracerProvider: the app may set its own (SDK, `logfire.configure()`, the distro)
    before or after this call. From then on lmscope's spans go through the app's provider, so its exporters get them,
    and lmscope's exporters get them too; lmscope's exporters send only lmscope's spans (its instrumentation scope),
    not the app's, unless `export_all_spans=True`.

    `metrics_exporters`: none (default), otlp (OTEL_EXPORTER_OTLP_* and their METRICS variants), console,
    prometheus (a scrape endpoint on `prometheus_endpoint`, default 127.0.0.1:9464; needs the
    `lmscope[prometheus]` extra). With none, lmscope's metrics still go through the app's SDK MeterProvider
    if it set one; with neither, no metric is recorded and recording costs nothing.

    Captured content (`capture_content`, default on) is scrubbed before it is stored: values under credential
    keys and credential-shaped text become `[REDACTED]` (`scrub=False` turns that off; `scrub_patterns` adds
    regexes; `scrub_callback(match: lmscope.ScrubMatch)` returns a value to keep, or None to redact), binary data
    is described rather than copied, and no value is longer than `max_content_chars` (default 16384).
    """
    global _active
    given = {"service_name": service_name, "exporters": exporters, "file_path": file_path,
             "otlp_endpoint": otlp_endpoint, "otlp_protocol": otlp_protocol, "capture_content": capture_content,
             "console_stream": console_stream, "max_queue_size": max_queue_size,
             "metrics_exporters": metrics_exporters, "prometheus_endpoint": prometheus_endpoint,
             "jaeger_endpoint": jaeger_endpoint, "jaeger_protocol": jaeger_protocol, "langfuse_host": langfuse_host,
             "mlflow_tracking_uri": mlflow_tracking_uri, "mlflow_experiment_id": mlflow_experiment_id,
             "mlflow_experiment_name": mlflow_experiment_name, "phoenix_endpoint": phoenix_endpoint,
             "scrub": scrub, "scrub_patterns": scrub_patterns, "max_content_chars": max_content_chars,
             "export_all_spans": export_all_spans}
    options = {name: value for name, value in given.items() if value is not None}
    resolved = resolve_options(**options)
    content = _content_policy(resolved, scrub_callback)
    from .instrumentation.dspy import TRACER_NAME as DSPY_TRACER_NAME
    from .telemetry._metrics_setup import setup_metrics
    from .telemetry._pipeline import build_span_processors
    from .telemetry._tracer_provider import setup_tracing

    with _lock:
        if _active is not None:
            if options or scrub_callback is not None:
                logger.warning("lmscope: already instrumented; call lmscope.uninstrument() to change options")
            return _active
        resolved = _without_exporters_the_app_runs(resolved)
        metrics = setup_metrics(resolved)
        try:
            processors = build_span_processors(resolved)
        except BaseException:
            if metrics is not None:  # a ConfigError from the span exporters: leave no scrape endpoint behind
                metrics.shutdown()
            raise
        # The DSPy scope passes even when `opentelemetry-instrument` instrumented DSPy (lmscope gives no tracer then).
        tracing = setup_tracing(resolved, processors, scopes=(DSPY_TRACER_NAME,))
        handle = Instrumentation(resolved, tracing, metrics, content)
        _active = handle
        if handle._tracing.exports:  # a SIGTERM must not lose what is queued (lmscope/_signals.py)
            _signals.install(handle._signal_flush())
    _watch_dspy_import()
    handle._carry_context_into_thread_pools()
    handle._instrument_litellm()
    return handle


def _without_exporters_the_app_runs(options: Options) -> Options:
    """No span exporter from OTEL_TRACES_EXPORTER when the app already runs its own TracerProvider.

    That variable also configures the SDK's own setup (`opentelemetry-instrument`, the distro), and lmscope's spans go
    through the app's provider, whose exporters then send them: honouring the variable a second time would send
    every span twice. Exporters asked of lmscope itself (argument, LMSCOPE_EXPORTERS, [tool.lmscope]) still run.
    The other order (the app sets its provider after instrument()) ends the same way: the registry stops feeding
    exporters that came from the variable once lmscope's spans go through the app's provider (_tracer_provider.py).
    """
    from .telemetry._options import NO_EXPORT
    from .telemetry._tracer_provider import app_provider

    if options.sources.get("exporters") != "OTEL_TRACES_EXPORTER" or options.exporters == (NO_EXPORT,):
        return options
    if app_provider() is None:
        return options
    logger.info("lmscope: OTEL_TRACES_EXPORTER=%s is not applied a second time: the app's TracerProvider, which "
                "lmscope's spans join, exports them already (pass exporters= to add lmscope's own)",
                ",".join(options.exporters))
    import dataclasses

    return dataclasses.replace(options, exporters=(NO_EXPORT,))


_watching_dspy = False
"""True while lmscope's one post-import hook for dspy waits for the import (wrapt fires a hook once, then drops it)."""


def _watch_dspy_import() -> None:
    """Instrument DSPy for the active handle now if the app imported it, else when it does.

    One hook per process, not one per `instrument()`: wrapt cannot remove a hook, and a hook per call would keep
    every earlier handle alive until DSPy is imported (100 instrument/uninstrument cycles, 100 hooks).
    """
    global _watching_dspy
    with _lock:
        if _watching_dspy:
            return
        _watching_dspy = True
    # Here, not at module level: wrapt's package import costs ~60-120 ms (it loads asyncio), which `import lmscope`
    # should not pay. When dspy is imported already, wrapt calls the hook at once.
    import wrapt

    wrapt.register_post_import_hook(_dspy_imported, "dspy")


def _dspy_imported(module: object) -> None:
    global _watching_dspy
    _watching_dspy = False
    handle = _active
    if handle is not None:
        handle._instrument_dspy(module)


def _content_policy(options: Options, scrub_callback: Any) -> ContentPolicy:
    """The content policy of these options; raises ConfigError for a callback that cannot be called."""
    from .telemetry._content import policy_from_options

    if scrub_callback is not None and not callable(scrub_callback):
        shown = repr(scrub_callback)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ConfigError.for_option("scrub_callback", f"not callable: {shown}", ARGUMENT,
                                     "a function taking a lmscope.ScrubMatch, or None")
    return policy_from_options(options, scrub_callback)


def uninstrument() -> None:
    """Flush what was recorded and put DSPy back exactly as it was."""
    handle = _active
    if handle is not None:
        handle.uninstrument()


def active() -> Instrumentation | None:
    """The handle of the active `instrument()` call, or None when lmscope is not instrumenting."""
    return _active


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span and push lmscope's metrics now; True when all exporters confirmed."""
    handle = _active
    return handle.force_flush(timeout_millis) if handle is not None else True
