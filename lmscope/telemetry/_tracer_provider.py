"""Tracer provider setup: add our processors to the app's SDK provider, or install ours once per process.

The SDK can add a span processor to a provider but never remove one, and `set_tracer_provider` works once
per process. So lmscope hangs exactly one `SwitchableSpanProcessor` on a provider and attaches or detaches
its processor groups there: teardown leaves an app's provider as it found it, and instrumenting again after
teardown reuses the provider lmscope installed earlier.

Which processors and exporters there are (one per exporter name) is `_pipeline`'s business; this module only
routes the spans of a provider to them.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider

from ._batch_export import BatchExportProcessor, drop_report, flush_processors, shutdown_processors
from ._fork import renew_after_fork
from ._options import Options, env_service_name

logger = logging.getLogger("lmscope")


def _fanout() -> SynchronousMultiSpanProcessor:
    """An empty SDK fan-out; a function, so the SDK's unannotated constructor is excused to mypy in one place."""
    return SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in the SDK


class _ProcessorGroup(SynchronousMultiSpanProcessor):
    """One setup's processors. Shuts down once, whoever asks first: our teardown or the provider at exit."""

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]  # the SDK leaves __init__ unannotated
        for processor in processors:
            self.add_span_processor(processor)
        self.processors = tuple(processors)
        self._closed = False
        self._close_lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._close_lock = threading.Lock()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # False after shutdown, as the SDK's own processors answer; nothing is left to deliver then.
        # In parallel: one hanging backend must not use up the time of the others.
        return not self._closed and flush_processors(self.processors, timeout_millis / 1000)

    def shutdown(self) -> None:
        """Deliver what is queued (bounded by SHUTDOWN_TIMEOUT_S), close the exporters, report drops in one line."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        shutdown_processors(self.processors)
        report = drop_report(self.processors)
        if report is not None:
            logger.warning(report)


class SwitchableSpanProcessor(SpanProcessor):
    """The one processor lmscope adds to a provider; groups of processors attach to and detach from it."""

    def __init__(self) -> None:
        # Replaced whole on every change, so span callbacks read one consistent fan-out without a lock.
        self._fanout = _fanout()
        self._groups: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def groups(self) -> tuple[SpanProcessor, ...]:
        return self._groups

    def attach(self, group: SpanProcessor) -> None:
        with self._lock:
            self._set((*self._groups, group))

    def detach(self, group: SpanProcessor) -> None:
        with self._lock:
            self._set(tuple(g for g in self._groups if g is not group))

    def _set(self, groups: tuple[SpanProcessor, ...]) -> None:
        fanout = _fanout()
        for group in groups:
            fanout.add_span_processor(group)
        self._groups, self._fanout = groups, fanout

    # Only the public hooks are forwarded: the SDK's private `_on_ending` stays the base class's no-op, which is all
    # lmscope's own processors (the only ones in the groups) implement.
    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        self._fanout.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._fanout.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._fanout.force_flush(timeout_millis)

    def shutdown(self) -> None:
        # Only the provider calls this, when it shuts down (app teardown or interpreter exit).
        with self._lock:
            fanout = self._fanout
            self._set(())
        fanout.shutdown()


class TracingSetup:
    """What `setup_tracing` installed: the provider spans go through and our processors on it."""

    def __init__(self, provider: TracerProvider, switch: SwitchableSpanProcessor, group: _ProcessorGroup,
                 *, owns_provider: bool, on_close: Callable[[TracingSetup], None]) -> None:
        self._provider = provider
        self._switch = switch
        self._group = group
        self._owns_provider = owns_provider
        self._on_close = on_close
        self._closed = False
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def tracer_provider(self) -> TracerProvider:
        return self._provider

    @property
    def owns_provider(self) -> bool:
        """False when the provider belongs to the app (we only added processors to it)."""
        return self._owns_provider

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        """Our processors, one per exporter, in the order of the `exporters` option."""
        return self._group.processors

    @property
    def exports(self) -> bool:
        """True when spans leave the process through a batch processor (a file or a backend), not only a console."""
        return any(isinstance(p, BatchExportProcessor) for p in self._group.processors)

    def locks(self) -> list[Any]:
        """The locks a flush or shutdown of this setup takes (lmscope/_signals.py checks they are free)."""
        found = [self._lock, self._group._close_lock, self._switch._lock]
        return found + [lock for p in self._group.processors if (lock := getattr(p, "_lock", None)) is not None]

    def tracer(self, name: str, version: str | None = None) -> trace.Tracer:
        return self._provider.get_tracer(name, version)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what our processors hold; the app's own processors are the app's business."""
        return self._group.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Detach, flush and shut down our processors; the provider itself stays up. Idempotent.

        Waits at most SHUTDOWN_TIMEOUT_S for exporters to deliver; what they could not is counted and
        reported in one warning line.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._switch.detach(self._group)  # first, so no new span reaches a processor being shut down
        self._on_close(self)
        self._group.shutdown()


def build_resource(options: Options) -> Resource:
    """Resource with OTEL_RESOURCE_ATTRIBUTES; a service name we were given beats the standard variables."""
    name = options.service_name if options.given("service_name") else env_service_name() or options.service_name
    return Resource.create({SERVICE_NAME: name})


class ProviderRegistry:
    """Process-wide memory: the provider lmscope installed, the switch on each provider, the live setups.

    The globals are injected so tests can drive a fresh-process setup without touching the real ones.
    """

    def __init__(self, *, get_global: Callable[[], trace.TracerProvider] = trace.get_tracer_provider,
                 set_global: Callable[[trace.TracerProvider], None] = trace.set_tracer_provider,
                 at_exit: Callable[[Callable[[], object]], object] = atexit.register) -> None:
        self._get_global = get_global
        self._set_global = set_global
        self._at_exit = at_exit
        self._installed: TracerProvider | None = None
        self._switches: WeakKeyDictionary[TracerProvider, SwitchableSpanProcessor] = WeakKeyDictionary()
        self._live: list[TracingSetup] = []
        self._exit_hook_registered = False
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def setup(self, options: Options, processors: Sequence[SpanProcessor]) -> TracingSetup:
        with self._lock:
            provider, owns = self._provider_for(build_resource(options))
            switch = self._switches.get(provider)
            if switch is None:
                switch = self._switches[provider] = SwitchableSpanProcessor()
                provider.add_span_processor(switch)
            group = _ProcessorGroup(processors)
            switch.attach(group)
            setup = TracingSetup(provider, switch, group, owns_provider=owns, on_close=self._forget)
            self._live.append(setup)
            if not self._exit_hook_registered:
                # Registered after the provider was created, so it runs before the SDK's own atexit shutdown.
                self._at_exit(self.shutdown_all)
                self._exit_hook_registered = True
        return setup

    def app_provider(self) -> TracerProvider | None:
        """The global provider when it is an SDK TracerProvider the app (not lmscope) set, else None."""
        current = self._get_global()
        return current if isinstance(current, TracerProvider) and current is not self._installed else None

    def _provider_for(self, resource: Resource) -> tuple[TracerProvider, bool]:
        current = self._get_global()
        if isinstance(current, TracerProvider):
            if current is self._installed and current.resource != resource:
                logger.warning("lmscope: the tracer provider installed earlier keeps service.name=%r "
                               "(a provider's resource is fixed); the new service.name=%r needs a new process",
                               current.resource.attributes.get(SERVICE_NAME), resource.attributes.get(SERVICE_NAME))
            return current, current is self._installed
        provider = TracerProvider(resource=resource)
        if not isinstance(current, trace.ProxyTracerProvider):
            # A vendor or no-op provider has no SDK processors to add to: keep ours private.
            logger.warning("lmscope: the global tracer provider is a %s, not an OpenTelemetry SDK TracerProvider; "
                           "lmscope exports its own spans through a separate provider", type(current).__name__)
            return provider, True
        self._set_global(provider)
        winner = self._get_global()
        if winner is not provider and isinstance(winner, TracerProvider):
            # Another thread set the global first (set_tracer_provider only warns): join that one.
            return winner, False
        self._installed = provider
        return provider, True

    def _forget(self, setup: TracingSetup) -> None:
        with self._lock:
            self._live = [s for s in self._live if s is not setup]

    def shutdown_all(self) -> None:
        """At interpreter exit (atexit, once per registry): deliver what is queued, close exporters, report drops.

        The app is ending, so our processors shut down rather than only flush: that bounds the wait
        (SHUTDOWN_TIMEOUT_S per setup), and the drop report is written once, before logging shuts down.
        """
        with self._lock:
            live = list(self._live)
        for setup in live:
            setup.shutdown()


_REGISTRY = ProviderRegistry()


def app_provider() -> TracerProvider | None:
    """The app's own SDK TracerProvider, set as the global one, if any (lmscope would join it)."""
    return _REGISTRY.app_provider()


def setup_tracing(options: Options, processors: Sequence[SpanProcessor]) -> TracingSetup:
    """Route spans to `processors`: through the app's SDK TracerProvider if it set one, else through ours.

    Our provider is created with `service.name` and OTEL_RESOURCE_ATTRIBUTES and set as the global one if
    none was set yet. `TracingSetup.shutdown()` detaches our processors and never shuts down the app's provider.
    """
    return _REGISTRY.setup(options, processors)
