"""The processors lmscope hangs on a tracer provider: one switch per provider, one group per setup.

The SDK can add a span processor to a provider but never remove one. So lmscope adds exactly one
`SwitchableSpanProcessor` to each provider its spans go through, and attaches or detaches each `instrument()`'s
`ProcessorGroup` there: teardown leaves an app's provider as it found it.

A provider lmscope shares with the app carries the app's spans too. A group passes on only the spans of lmscope's
own instrumentation scopes (unless `export_all_spans`), so lmscope's exporters never send the app's spans to a
backend the app may export them to already.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor

from ._batch_export import drop_report, flush_processors, shutdown_processors
from ._fork import renew_after_fork

logger = logging.getLogger("lmscope")


def _fanout() -> SynchronousMultiSpanProcessor:
    """An empty SDK fan-out; a function, so the SDK's unannotated constructor is excused to mypy in one place."""
    return SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in the SDK


class ProcessorGroup(SynchronousMultiSpanProcessor):
    """One setup's processors. Shuts down once, whoever asks first: our teardown or the provider at exit.

    `scopes` None lets every span through (`export_all_spans`); otherwise only spans whose instrumentation scope
    is named in it: one attribute read and one set lookup per span, no lock.
    """

    def __init__(self, processors: Sequence[SpanProcessor], scopes: Iterable[str] | None = ()) -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]  # the SDK leaves __init__ unannotated
        for processor in processors:
            self.add_span_processor(processor)
        self.processors = tuple(processors)
        self.starting = tuple(p for p in processors if getattr(p, "reads_span_start", True))
        """The processors with an `on_start` to call (lmscope's batch processors have none): the others cost nothing
        at a span's start."""
        self.builds_attributes_on_export = all(getattr(p, "builds_attributes_on_export", False) for p in processors)
        """Every processor of the group stores attributes left for export before reading any
        (`_attributes_on_export.py`)."""
        self._scopes = None if scopes is None else frozenset(scopes)
        self._closed = False
        self._close_lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._close_lock = threading.Lock()

    def add_scope(self, name: str) -> None:
        """Let the spans of instrumentation scope `name` through (a tracer lmscope made)."""
        if self._scopes is not None and name not in self._scopes:
            self._scopes = self._scopes | {name}  # replaced whole: span callbacks read it without a lock

    # The filter is written out in both hooks: they run for every span of the provider, the app's too. Each calls the
    # processors itself (not through the SDK's fan-out): one layer of calls fewer on every span.
    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        scopes = self._scopes
        if scopes is None or ((scope := span.instrumentation_scope) is not None and scope.name in scopes):
            for processor in self.starting:
                processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        scopes = self._scopes
        if scopes is None or ((scope := span.instrumentation_scope) is not None and scope.name in scopes):
            for processor in self.processors:
                processor.on_end(span)

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
        self._starting: tuple[SpanProcessor, ...] = ()
        """The groups with a processor that reads a span's start."""
        self.reads_span_start = False
        """Whether any attached group does: lmscope's recorder skips calling `on_start` when none does."""
        self.builds_attributes_on_export = True
        """Every attached group stores attributes left for export (`ProcessorGroup.builds_attributes_on_export`)."""
        self._lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def groups(self) -> tuple[SpanProcessor, ...]:
        return self._groups

    def attach(self, group: SpanProcessor) -> None:
        with self._lock:
            if group not in self._groups:
                self._set((*self._groups, group))

    def detach(self, group: SpanProcessor) -> None:
        with self._lock:
            self._set(tuple(g for g in self._groups if g is not group))

    def _set(self, groups: tuple[SpanProcessor, ...]) -> None:
        fanout = _fanout()
        for group in groups:
            fanout.add_span_processor(group)
        self._groups, self._fanout = groups, fanout
        self._starting = tuple(g for g in groups if getattr(g, "starting", True))
        self.reads_span_start = bool(self._starting)
        self.builds_attributes_on_export = all(getattr(g, "builds_attributes_on_export", False) for g in groups)
        # One group (every setup but a second `instrument()` at once): its hook is this one's, one call less on every
        # span. Set with the groups, under the lock; a span ending meanwhile reads the one or the other, both whole.
        if len(groups) == 1:
            self.on_end = groups[0].on_end  # type: ignore[method-assign]
        else:
            vars(self).pop("on_end", None)

    # Only the public hooks are forwarded: the SDK's private `_on_ending` stays the base class's no-op, which is all
    # lmscope's own processors (the only ones in the groups) implement. Span hooks call the groups directly (the
    # fan-out serves flush and shutdown): one layer of calls fewer on every span.
    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        for group in self._starting:
            group.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for group in self._groups:
            group.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._fanout.force_flush(timeout_millis)

    def shutdown(self) -> None:
        # Only the provider calls this, when it shuts down (app teardown or interpreter exit).
        with self._lock:
            fanout = self._fanout
            self._set(())
        fanout.shutdown()
