"""lmscope's tracer: its spans go through lmscope's own provider until the app sets a global one, then through that.

Why not set the global provider, as lmscope once did: `trace.set_tracer_provider` works once per process, so an app
that configures OpenTelemetry after `lmscope.instrument()` (its own SDK `TracerProvider`, `logfire.configure()`)
was refused and its exporters got nothing. lmscope never takes the global slot; it follows it instead:

- before the app sets a provider, lmscope's spans go through a provider of lmscope's own (never global), whose only
  processors are lmscope's exporters;
- from the first span after the app set one, they go through the app's provider, where lmscope has added its
  exporters: the app's exporters get lmscope's spans and lmscope's get them too, each span once, and a span the
  app starts inside a lmscope span (or the reverse) is its child in the same trace, as the context says.

The check is one call of the API's `get_tracer_provider()` per span while lmscope runs alone (no lock; the global
is set once per process, so nothing needs guarding), and once settled one attribute read: that choice never changes.
The other designs cost more or lose spans: setting a proxy provider as the global one still refuses the app (the slot
is taken); checking every Nth span or on a timer sends the first spans after the app's setup past its exporters; a
notification does not exist (the API announces no `set_tracer_provider`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import Attributes

Router = Callable[[str, "str | None"], "trace.Tracer | None"]
"""(name, version) -> the tracer to use for good once the global provider is set; None while it is not."""


def _never() -> bool:
    return False


class FollowingTracer(trace.Tracer):
    """A Tracer on lmscope's own provider that switches for good to the global provider once the app sets one."""

    def __init__(self, name: str, version: str | None, own: trace.Tracer, route: Router,
                 own_builds_attributes_on_export: Callable[[], bool] = _never,
                 recorder: trace.Tracer | None = None) -> None:
        """`own`: the tracer of lmscope's own provider, used until `route` answers with a tracer (a NoOpTracer when
        `route` answers at once: the global provider was set before). `own_builds_attributes_on_export`: whether only
        lmscope's processors, which store attributes on export, see the own provider's spans now; `recorder` makes
        such spans for them (`_recorded_span.RecordingTracer`)."""
        self._name = name
        self._version = version
        self._route = route
        self._own = own
        self._own_builds_attributes_on_export = own_builds_attributes_on_export
        self._recorder = recorder
        self._settled: trace.Tracer | None = route(name, version)

    def _tracer(self) -> trace.Tracer:
        settled = self._settled
        if settled is not None:
            return settled
        settled = self._settled = self._route(self._name, self._version)
        if settled is not None:
            return settled
        return self._own

    def resolve(self) -> tuple[trace.Tracer, bool]:
        """(the tracer the next span goes through, whether only lmscope's own processors see it: then it is the
        recorder, whose spans lmscope's exporters build with their attributes, `_attributes_on_export.py`). One look
        at the global provider, as a span start takes; never the recorder once lmscope's spans go through the app's
        provider."""
        settled = self._settled  # `_tracer()`, spelled out: this runs on every span
        if settled is None:
            settled = self._settled = self._route(self._name, self._version)
            if settled is None:  # still on lmscope's own provider
                recorder = self._recorder
                if recorder is not None and self._own_builds_attributes_on_export():
                    return recorder, True
                return self._own, False
        return settled, False

    @property
    def sampler(self) -> object:
        """The sampler of the tracer spans go through now (an SDK tracer's public `sampler`), or None: lets callers
        skip building attributes for a span the SDK's fixed samplers drop anyway (`dspy/_runtime._may_sample`)."""
        return getattr(self._tracer(), "sampler", None)

    def start_span(self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Attributes = None, links: Sequence[Link] | None = None,
                   start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Span:
        return self.resolve()[0].start_span(name, context, kind, attributes, links, start_time, record_exception,
                                            set_status_on_exception)

    # The API types this as its private `_AgnosticContextManager`; any context manager of a Span is what callers use.
    def start_as_current_span(  # type: ignore[override]
            self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
            attributes: Attributes = None, links: Sequence[Link] | None = None, start_time: int | None = None,
            record_exception: bool = True, set_status_on_exception: bool = True,
            end_on_exit: bool = True) -> AbstractContextManager[Span]:
        # The SDK's tracer, whose context manager starts the span when the block is entered and also decorates
        # coroutine functions: lmscope's own code starts its spans with `start_span`.
        return self._tracer().start_as_current_span(name, context, kind, attributes, links, start_time,
                                                    record_exception, set_status_on_exception, end_on_exit)
