"""Where lmscope's spans go: through lmscope's own provider, or the app's global one once it set one.

lmscope never sets the global TracerProvider (`_following_tracer.py` says why): the app can set its own before or
after `lmscope.instrument()`, plain SDK or Logfire, and is never refused. Its own provider lmscope creates once per
process (its resource is fixed), and reuses when instrumenting again after teardown.

On each provider lmscope's spans go through it hangs one `SwitchableSpanProcessor` (`_span_switch.py`), where each
setup attaches its processor group and detaches it at teardown, leaving an app's provider as it found it.

Which processors and exporters there are (one per exporter name) is `_pipeline`'s business; this module only
routes spans to them.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, Tracer, TracerProvider

from ._attributes_on_export import reads_no_attributes
from ._batch_export import BatchExportProcessor
from ._following_tracer import FollowingTracer
from ._fork import renew_after_fork, run_at_exit
from ._internal_errors import guarded
from ._options import DEFAULT, Options, env_service_name
from ._recorded_span import RecordingTracer, build_lock
from ._span_ids import ID_GENERATOR, with_private_ids
from ._span_switch import ProcessorGroup, SwitchableSpanProcessor

logger = logging.getLogger("lmscope")


class TracingSetup:
    """What `setup_tracing` set up: lmscope's processors for one `instrument()`, and the tracers it hands out."""

    def __init__(self, registry: ProviderRegistry, group: ProcessorGroup, *, joins_app: bool,
                 given_service_name: str | None = None) -> None:
        self._registry = registry
        self._group = group
        self.joins_app = joins_app
        """False when the exporters came from OTEL_TRACES_EXPORTER: the app's provider exports lmscope's spans
        already once they go through it (see `ProviderRegistry._follow`)."""
        self.given_service_name = given_service_name
        """The `service_name` lmscope's own settings asked for (None: the default or the standard variables)."""
        self._closed = False
        self._shut_down = False
        self._after_shutdown: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def group(self) -> ProcessorGroup:
        return self._group

    @property
    def tracer_provider(self) -> trace.TracerProvider:
        """The provider lmscope's spans go through now: the app's global one once it set one, else lmscope's own."""
        return self._registry.current_provider()

    @property
    def service_name(self) -> str | None:
        """`service.name` of the resource lmscope's spans carry now: the provider's, fixed when it was built (the
        app's once lmscope follows it). None for a provider that shows no SDK resource."""
        return provider_service_name(self.tracer_provider)

    @property
    def owns_provider(self) -> bool:
        """False once lmscope's spans go through the app's provider (we only added processors to it)."""
        return self._registry.current_provider() is self._registry.own_provider

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
        found = [self._lock, self._group._close_lock, *self._registry.locks(), build_lock()]
        return found + [lock for p in self._group.processors if (lock := getattr(p, "_lock", None)) is not None]

    def tracer(self, name: str, version: str | None = None) -> trace.Tracer:
        """A tracer whose spans our processors export (its scope passes the group's filter)."""
        self._group.add_scope(name)
        return self._registry.tracer(name, version)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what our processors hold; the app's own processors are the app's business."""
        return self._group.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Detach, flush and shut down our processors; every provider stays up. Idempotent.

        Waits at most SHUTDOWN_TIMEOUT_S for exporters to deliver; what they could not is counted and
        reported in one warning line.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._registry.forget(self)  # first, so no new span reaches a processor being shut down
            self._group.shutdown()
        finally:
            self._shut_down = True
            while self._after_shutdown:
                guarded("after the shutdown of lmscope's exporters", self._after_shutdown.pop(0))

    @property
    def shutting_down(self) -> bool:
        """True while a `shutdown` is under way (on any thread): it is delivering what was queued."""
        return self._closed and not self._shut_down

    def call_after_shutdown(self, fn: Callable[[], object]) -> bool:
        """Have `fn` run when the shutdown under way ends; False (and nothing kept) when none is.

        Takes no lock: a signal handler calls it, possibly on top of the very shutdown it waits for."""
        if not self.shutting_down:
            return False
        self._after_shutdown.append(fn)
        return True


def build_resource(options: Options) -> Resource:
    """Resource with OTEL_RESOURCE_ATTRIBUTES; a service name we were given beats the standard variables."""
    name = options.service_name if options.given("service_name") else env_service_name() or options.service_name
    return Resource.create({SERVICE_NAME: name})


def provider_service_name(provider: trace.TracerProvider) -> str | None:
    """The `service.name` of an SDK provider's resource (the SDK's public `resource`), else None."""
    resource = getattr(provider, "resource", None)
    name = resource.attributes.get(SERVICE_NAME) if isinstance(resource, Resource) else None
    return name if isinstance(name, str) else None


def warn_service_name_not_applied(setup: TracingSetup, provider: trace.TracerProvider) -> None:
    """One warning when lmscope's spans join the app's provider, whose resource names another service than the one
    lmscope was given: a provider's resource is fixed, and the app's is the app's to choose."""
    given, actual = setup.given_service_name, provider_service_name(provider)
    if given is not None and actual is not None and given != actual:
        logger.warning("lmscope: lmscope's spans go through the app's TracerProvider, whose resource says "
                       "service.name=%r: the service_name=%r lmscope was given does not apply to them", actual, given)


def _service_name_asked_of_lmscope(options: Options) -> str | None:
    """The service name lmscope's own settings gave (argument, LMSCOPE_SERVICE_NAME, [tool.lmscope]); None for the
    default and for OTEL_SERVICE_NAME, which the app's provider reads itself when it wants it."""
    source = options.sources.get("service_name", DEFAULT)
    return None if source in (DEFAULT, "OTEL_SERVICE_NAME") else options.service_name


def joinable(provider: trace.TracerProvider) -> bool:
    """True when processors can be added to `provider`: an SDK TracerProvider, or a proxy offering the SDK's public
    `add_span_processor` (Logfire's global provider is one: it forwards to the SDK provider `configure()` built)."""
    return isinstance(provider, TracerProvider) or callable(getattr(provider, "add_span_processor", None))


class ProviderRegistry:
    """Process-wide memory: lmscope's own provider, the app's provider it follows, their switches, the live setups.

    The global getter is injected so tests can drive a fresh-process setup without touching the real one.
    """

    def __init__(self, *, get_global: Callable[[], trace.TracerProvider] = trace.get_tracer_provider,
                 at_exit: Callable[[Callable[[], object]], object] = run_at_exit) -> None:
        self._get_global = get_global
        self._at_exit = at_exit
        self._own: _OwnTracerProvider | None = None
        self._own_limits = SpanLimits()
        self._own_switch = SwitchableSpanProcessor()
        self._app: trace.TracerProvider | None = None
        self._app_switch: SwitchableSpanProcessor | None = None
        self._settled = False
        """True once the global provider was seen set: followed if `joinable`, else lmscope kept its own."""
        self._live: list[TracingSetup] = []
        self._exit_hook_registered = False
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def own_provider(self) -> TracerProvider | None:
        return self._own

    def current_provider(self) -> trace.TracerProvider:
        self._settle()
        provider = self._app if self._app is not None else self._own
        assert provider is not None, "a setup exists, so one of the two does"
        return provider

    def locks(self) -> list[Any]:
        """The registry's own lock and its switches': a setup's shutdown takes them all (`forget`). The registry's
        is held by `shutdown_all` too, the exit hook of a `multiprocessing` worker, which `Pool.terminate()` sends
        SIGTERM to while it runs: a signal handler that shut down on top of it waited for itself for good."""
        switches = [self._own_switch] if self._app_switch is None else [self._own_switch, self._app_switch]
        return [self._lock, *(switch._lock for switch in switches)]

    def setup(self, options: Options, processors: Sequence[SpanProcessor],
              scopes: Iterable[str] = ()) -> TracingSetup:
        group = ProcessorGroup(processors, None if options.export_all_spans else scopes)
        setup = TracingSetup(self, group, joins_app=options.sources.get("exporters") != "OTEL_TRACES_EXPORTER",
                             given_service_name=_service_name_asked_of_lmscope(options))
        self._settle()
        with self._lock:
            if self._app is None:
                self._ensure_own(build_resource(options))
                self._own_switch.attach(group)
            else:
                warn_service_name_not_applied(setup, self._app)
                if setup.joins_app:
                    assert self._app_switch is not None
                    self._app_switch.attach(group)
            self._live.append(setup)
            if not self._exit_hook_registered:
                # After our own provider (if any) was created: runs before that provider's atexit shutdown. An app's
                # provider set up later shuts down first, and with it our processors there (once, see ProcessorGroup).
                self._at_exit(self.shutdown_all)
                self._exit_hook_registered = True
        return setup

    def tracer(self, name: str, version: str | None) -> trace.Tracer:
        own = trace.NoOpTracer() if self._own is None else self._own.get_tracer(name, version)
        return FollowingTracer(name, version, own, self._route, self._own_builds_attributes_on_export,
                               self._recorder(own, name, version))

    def _recorder(self, own: trace.Tracer, name: str, version: str | None) -> RecordingTracer | None:
        """The tracer recording the spans of the own provider that only lmscope's processors see
        (`_recorded_span.py`); None where the provider's own tracer is not the SDK's (OTEL_SDK_DISABLED) or counts
        its spans in the SDK's own metrics (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED), which a recording skips."""
        provider = self._own
        if provider is None or type(own) is not Tracer or _sdk_internal_metrics_enabled():
            return None
        return RecordingTracer(provider=provider, id_generator=ID_GENERATOR, processor=self._own_switch,
                               limits=self._own_limits, name=name, version=version)

    def _own_builds_attributes_on_export(self) -> bool:
        """Only lmscope's processors see the spans of lmscope's own provider, all of them store attributes on export
        (`_attributes_on_export.py`), nobody else's processor was added to it, and its sampler reads no attributes."""
        own = self._own
        return type(own) is _OwnTracerProvider and own.processors_added == 1 \
            and self._own_switch.builds_attributes_on_export and own.sampler_reads_no_attributes

    def _route(self, name: str, version: str | None) -> trace.Tracer | None:
        """The tracer lmscope's spans use for good once the global provider is set; None until then (per span)."""
        if not self._settled and isinstance(self._get_global(), trace.ProxyTracerProvider):
            return None
        self._settle()
        if self._app is not None:
            return with_private_ids(self._app.get_tracer(name, version))
        assert self._own is not None, "not following: setup() created ours"
        return self._own.get_tracer(name, version)

    def _settle(self) -> None:
        """Follow the global provider if the app set one since; once settled, nothing changes any more."""
        if self._settled:
            return
        current = self._get_global()
        if isinstance(current, trace.ProxyTracerProvider):
            return
        with self._lock:
            if not self._settled:
                self._follow(current)
                self._settled = True

    def _follow(self, provider: trace.TracerProvider) -> None:
        if not joinable(provider):
            # A no-op or vendor provider takes no processors: lmscope's exporters would see none of its spans.
            logger.warning("lmscope: the global tracer provider is a %s, not an OpenTelemetry SDK TracerProvider; "
                           "lmscope exports its own spans through a separate provider", type(provider).__name__)
            return
        switch = SwitchableSpanProcessor()
        provider.add_span_processor(switch)  # type: ignore[attr-defined]  # joinable() checked it has one
        self._app, self._app_switch = provider, switch
        for setup in self._live:
            warn_service_name_not_applied(setup, provider)
            if setup.joins_app:
                switch.attach(setup.group)  # also stays on our own switch for the spans still open there
            else:
                logger.info("lmscope: from now on lmscope's spans go through the app's TracerProvider, which exports "
                            "them: the exporters from OTEL_TRACES_EXPORTER no longer get new spans")

    def _ensure_own(self, resource: Resource) -> TracerProvider:
        own = self._own
        if own is None:
            # What the SDK would read itself, now: the spans lmscope records (`_recorded_span.py`) obey them too.
            self._own_limits = limits = SpanLimits()
            own = self._own = _OwnTracerProvider(resource=resource, id_generator=ID_GENERATOR, span_limits=limits)
            own.add_span_processor(self._own_switch)
        elif own.resource != resource:
            logger.warning("lmscope: the tracer provider lmscope created earlier keeps service.name=%r "
                           "(a provider's resource is fixed); the new service.name=%r needs a new process",
                           own.resource.attributes.get(SERVICE_NAME), resource.attributes.get(SERVICE_NAME))
        return own

    def forget(self, setup: TracingSetup) -> None:
        """Detach `setup`'s group from every switch and stop tracking it."""
        self._own_switch.detach(setup.group)
        if self._app_switch is not None:
            self._app_switch.detach(setup.group)
        with self._lock:
            self._live = [s for s in self._live if s is not setup]

    def shutdown_all(self) -> None:
        """At interpreter exit (atexit, once per registry; also at the exit of a `multiprocessing` child, `_fork.py`):
        deliver what is queued, close exporters, report drops.

        The app is ending, so our processors shut down rather than only flush: that bounds the wait
        (SHUTDOWN_TIMEOUT_S per setup), and the drop report is written once, before logging shuts down.
        """
        for hook in list(_BEFORE_EXIT_DELIVERY):
            guarded("preparing the exit delivery", hook)
        with self._lock:
            live = list(self._live)
        for setup in live:
            setup.shutdown()


class _OwnTracerProvider(TracerProvider):
    """lmscope's own provider, counting the processors added to it: lmscope adds one (its switch); the app may add
    more through `Instrumentation.tracer_provider`, and then sees every span as the app's provider would show it."""

    processors_added = 0
    added_by_app: tuple[SpanProcessor, ...] = ()
    """The processors added after lmscope's switch (the first), in order: a span lmscope recorded while one was
    added is handed to it at its end, as the SDK's provider would (`_recorded_span.RecordedSpan.end`)."""

    @functools.cached_property
    def sampler_reads_no_attributes(self) -> bool:
        """Its sampler (from OTEL_TRACES_SAMPLER, fixed when it was built) is one of the SDK's own."""
        return reads_no_attributes(self.sampler)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if self.processors_added:
            self.added_by_app = (*self.added_by_app, span_processor)
        self.processors_added += 1


def _sdk_internal_metrics_enabled() -> bool:
    """The SDK's switch for its own span metrics, read as the SDK reads it when it builds a tracer."""
    return os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true"


_BEFORE_EXIT_DELIVERY: list[Callable[[], object]] = []


def before_exit_delivery(hook: Callable[[], object]) -> None:
    """Run `hook` at exit, right before lmscope delivers what is queued (`ProviderRegistry.shutdown_all`)."""
    _BEFORE_EXIT_DELIVERY.append(hook)


_REGISTRY = ProviderRegistry()


def app_provider() -> trace.TracerProvider | None:
    """The app's global provider when it set one lmscope's spans can join, else None (lmscope never sets it)."""
    current = trace.get_tracer_provider()
    return None if isinstance(current, trace.ProxyTracerProvider) or not joinable(current) else current


def setup_tracing(options: Options, processors: Sequence[SpanProcessor], scopes: Iterable[str] = ()) -> TracingSetup:
    """Route lmscope's spans to `processors`, through the app's global provider once it set one, else through ours.

    `processors` get the spans of `scopes` and of every tracer `TracingSetup.tracer()` hands out, or every span of
    the provider with `export_all_spans`. `TracingSetup.shutdown()` detaches them and shuts down no provider.
    """
    return _REGISTRY.setup(options, processors, scopes)
