"""Spans lmscope records for its own processors alone, and turns into the SDK's `ReadableSpan` on export.

The SDK's span is built for any reader at any moment: a lock, bounded containers for attributes, events and links,
the processors' start hook through the provider's fan-out, a `ReadableSpan` copied at `end()`. That is ~12 µs a span
in a tight loop and twice that inside DSPy's call stacks, more than all of lmscope's own work on a module span. A
span that only lmscope's own processors see (`_attributes_on_export.py` says when: lmscope's provider, nobody else's
processor on it, a sampler of the SDK's) needs none of it while it runs. `RecordingTracer` makes such spans as the
SDK's tracer would (the same ids, parent, sampling decision, trace flags and state, scope and resource) but records
them in a small object: its name, kind, times, status, the attributes handed over or set on it in call order, its
events and links. lmscope's processors turn it into the SDK's `ReadableSpan` once, in the export thread, through the
SDK's own `BoundedAttributes` and `BoundedList` with the provider's limits: what every exporter gets is the span the
SDK would have handed it (tests/telemetry/test_attributes_on_export.py compares both on the raw OTLP/JSON).

A recorded span is a full `opentelemetry.trace.Span` to the app's code that reaches it as the current span: values
set on it, events, links, status, a new name, all behave as on the SDK's span (the same warnings on an ended one),
and a span the app starts inside it is its child.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from time import time_ns as _time_ns
from types import TracebackType
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Sampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes, AttributeValue

from ._fork import renew_after_fork
from ._internal_errors import report_internal_error
from ._one_step_context import span_in

logger = logging.getLogger("lmscope")

AttributesLater = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
"""A span's attributes as finished values, or a builder of them over a copy taken in the call (run on export)."""


class Later(tuple[Any, ...]):
    """`Later((func, *args))`: `func(*args)`, run when called (on export), kept as the one tuple `(func, *args)`.

    A span waiting in the export queue keeps what its builders hold until the export, and a `functools.partial` keeps
    three objects (itself, its arguments, an empty keywords dict) where this keeps one: with partials one DSPy
    pipeline call kept 19.3 KB in 168 objects until its export, with these 11.8 KB in 94 (tracemalloc)."""

    __slots__ = ()  # made by tuple's own constructor, in C: a `__new__` in Python would cost more than it saves

    def __call__(self) -> Any:
        return self[0](*self[1:])


_FLAGS = tuple(TraceFlags(bits) for bits in range(4))
"""The trace flags a span of lmscope's can have, by value: sampled (1), random trace id (2), both, neither."""


class OwnProvider(Protocol):
    """lmscope's own SDK provider, as a recording reads it (`_tracer_provider._OwnTracerProvider`)."""

    @property
    def sampler(self) -> Sampler: ...

    @property
    def resource(self) -> Resource: ...

    @property
    def added_by_app(self) -> tuple[SpanProcessor, ...]:
        """The processors added after lmscope's switch, in order: the app's (`Instrumentation.tracer_provider`)."""


class RecordingTracer(trace.Tracer):
    """The tracer of lmscope's own provider for the spans only lmscope's processors see: `start_span` decides as the
    SDK's tracer of that provider would, and records a `RecordedSpan` in place of the SDK's span."""

    def __init__(self, *, provider: OwnProvider, id_generator: IdGenerator, processor: SpanProcessor,
                 limits: SpanLimits, name: str, version: str | None) -> None:
        self.provider = provider
        self.sampler = sampler = provider.sampler
        self.id_generator = id_generator
        self.processor = processor
        """Where the provider sends the span first: lmscope's switch, the first processor added to it."""
        self.limits = limits
        version = version or ""  # as the SDK's `get_tracer` names a scope
        self.instrumentation_scope = InstrumentationScope(name, version, None, None)
        self.instrumentation_info = InstrumentationInfo(name, version, None)
        self._random_trace_ids = id_generator.is_trace_id_random()
        self._root_flags = _FLAGS[TraceFlags.SAMPLED | (TraceFlags.RANDOM_TRACE_ID if self._random_trace_ids else 0)]
        self._parent_decides = sampler is DEFAULT_ON
        """The SDK's default sampler (`parentbased_always_on`): a span is sampled, and carries its parent's trace
        state, exactly when its parent is sampled, or has none (sampling.py's `ParentBased(ALWAYS_ON)`)."""

    def start_span(self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Attributes = None, links: Sequence[Link] | None = (),
                   start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> trace.Span:
        current = span_in(context)
        parent: SpanContext | RecordedSpan | None
        if type(current) is RecordedSpan:  # read as it is: no SpanContext made for it in the call
            parent = current
        else:
            parent = current.get_span_context()
            if parent is not None and type(parent) is not SpanContext and not isinstance(parent, SpanContext):
                raise TypeError("parent_span_context must be a SpanContext or None.")
            if parent is not None and not parent.is_valid:
                parent = None
        trace_id = self.id_generator.generate_trace_id() if parent is None else parent.trace_id
        if self._parent_decides:  # the SDK's default sampler: its answer, without asking it
            if parent is None:
                flags, recording, trace_state = self._root_flags, True, None
            else:  # sampled exactly when the parent is; a random trace id stays one
                parent_flags = parent.trace_flags
                flags, trace_state = _FLAGS[parent_flags & 3], parent.trace_state
                recording = bool(parent_flags & TraceFlags.SAMPLED)  # `sampled`, a property, without its call
            kept = attributes
        else:
            sampling = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            random_trace_id = self._random_trace_ids if parent is None else parent.trace_flags.random_trace_id
            sampled = sampling.decision.is_sampled()  # type: ignore[no-untyped-call]  # unannotated in the SDK
            flags = _FLAGS[(TraceFlags.SAMPLED if sampled else 0) | (TraceFlags.RANDOM_TRACE_ID if random_trace_id
                                                                     else 0)]
            recording = sampling.decision.is_recording()  # type: ignore[no-untyped-call]
            trace_state, kept = sampling.trace_state, sampling.attributes
        span_id = self.id_generator.generate_span_id()
        if not recording:
            return NonRecordingSpan(SpanContext(trace_id, span_id, False, flags, trace_state))
        span = RecordedSpan(self, name, trace_id, span_id, flags, trace_state, parent, kind,
                            start_time if start_time is not None else _time_ns())
        if not record_exception:
            span._record_exception = False
        if not set_status_on_exception:
            span._set_status_on_exception = False
        if kept:  # the SDK's span starts with the attributes its sampler returned
            span.set_attributes(kept)
        if links:
            for link in links:
                span.add_link(link.context, link.attributes)
        processor = self.processor
        if getattr(processor, "reads_span_start", True):  # lmscope's switch says when none of its groups does
            processor.on_start(span, context)  # type: ignore[arg-type]  # read as a span: see the class
        return span

    # The API types this as its private `_AgnosticContextManager`; any context manager of a Span is what callers use.
    # lmscope's own code starts its spans with `start_span`; `FollowingTracer` sends this to the SDK's tracer.
    def start_as_current_span(  # type: ignore[override]
            self, name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
            attributes: Attributes = None, links: Sequence[Link] | None = (), start_time: int | None = None,
            record_exception: bool = True, set_status_on_exception: bool = True,
            end_on_exit: bool = True) -> AbstractContextManager[trace.Span]:
        return self._as_current(name, context, kind, attributes, links, start_time, record_exception,
                                set_status_on_exception, end_on_exit)

    @contextmanager
    def _as_current(self, name: str, context: Context | None, kind: SpanKind, attributes: Attributes,
                    links: Sequence[Link] | None, start_time: int | None, record_exception: bool,
                    set_status_on_exception: bool, end_on_exit: bool) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time, record_exception,
                               set_status_on_exception)  # when the block is entered, as the SDK's does
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


class RecordedSpan(trace.Span):
    """A span of `RecordingTracer`: what it will be exported as, recorded, not yet validated or bounded.

    lmscope's processors read it where they read the SDK's span: `context`, `parent`, `instrumentation_scope` while
    it runs (the scope filter, the console's open spans, the batch processor's sampled check) and `readable()` where
    they read the rest."""

    __slots__ = ("_parent", "end_time", "entries", "instrumentation_scope", "kind", "name", "span_id",
                 "start_time", "trace_flags", "trace_id", "trace_state", "tracer")

    # What most spans never change, read from the class until one does (the base class gives instances a dict).
    _status = Status(StatusCode.UNSET)
    _events: list[Event] | None = None
    _links: list[Link] | None = None
    _record_exception = True
    _set_status_on_exception = True
    _built: ReadableSpan | None = None

    def __init__(self, tracer: RecordingTracer, name: str, trace_id: int, span_id: int, trace_flags: TraceFlags,
                 trace_state: TraceState | None, parent: SpanContext | RecordedSpan | None, kind: SpanKind,
                 start_time: int) -> None:
        self.tracer = tracer
        self.instrumentation_scope = tracer.instrumentation_scope
        self.name = name
        # The fields of its SpanContext, which is made when somebody asks for it (`context`): a child started in the
        # call reads them here, and a span waiting for its export keeps one object less (docs/cpython-gc.md).
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags
        self.trace_state = trace_state
        self._parent = parent
        self.kind = kind
        self.start_time = start_time
        self.end_time: int | None = None
        self.entries: list[Any] = []
        """Attributes in the order they were handed over or set: each later value of a key wins, as in the call. A
        builder is kept flat (`hand_over`)."""

    # --- the API's span ---------------------------------------------------------------------------------

    @property
    def context(self) -> SpanContext:
        """The span's SpanContext, made each time it is asked for (an equal one each time): kept, it would wait with
        the span for the export. Inside the call only an LM call's read-only view asks for it (`_lm_span_view.py`)."""
        return SpanContext(self.trace_id, self.span_id, False, self.trace_flags, self.trace_state)

    @property
    def parent(self) -> SpanContext | None:
        """The SpanContext of the span's parent (a recorded parent's is made when asked for), None for a root."""
        parent = self._parent
        return parent.context if type(parent) is RecordedSpan else parent  # type: ignore[return-value]  # narrowed

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._ended("Setting attribute on ended span."):
            return
        self.entries.append(self._cleaned(attributes))

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._ended("Setting attribute on ended span."):
            return
        # One value set as the SDK's span sets it (`BoundedAttributes.__setitem__`): a key that is not a non-empty
        # string is dropped and counted, where `set_attributes` (`_set_items`) turns a non-string key into its text.
        entry = BoundedAttributes(None, immutable=False, max_value_len=self.tracer.limits.max_span_attribute_length)
        entry[key] = value
        self.entries.append(entry)

    def _cleaned(self, attributes: Mapping[str, AttributeValue]) -> BoundedAttributes:
        """`attributes` validated and copied now, as the SDK's span stores a value when it is set (a list or a
        mapping the app changes later does not change the span; an object becomes its text); `_build` adds the
        count of values refused here to the span's."""
        return self._bounded(None, attributes, self.tracer.limits.max_span_attribute_length)

    def hand_over(self, attributes: Sequence[AttributesLater]) -> None:
        """lmscope's attributes for this span, built on export (`_attributes_on_export.set_on_export`). A builder
        `Later((func, *args))` is kept flat, its length then its items: the span keeps no tuple of its own per
        builder until its export. Each object a span keeps counts towards the next garbage collection of the
        program's thread (docs/cpython-gc.md); an empty mapping adds nothing and is not kept."""
        if self.end_time is not None:  # `_ended`, spelled out: this runs twice on every span
            logger.warning("Setting attribute on ended span.")
            return
        entries = self.entries
        for entry in attributes:
            if type(entry) is Later:
                # One extend, atomic as one call: a value another thread sets on the span meanwhile never lands
                # between a builder's length and its items.
                entries.extend((len(entry), *entry))
            elif entry:
                entries.append(entry)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._ended("Tried calling _add_event on an ended span."):
            return
        limits = self.tracer.limits
        stored = self._bounded(limits.max_event_attributes, attributes, limits.max_attribute_length)
        if self._events is None:
            self._events = []
        self._events.append(Event(name=name, attributes=stored, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if not (context and (context.is_valid or (attributes or context.trace_state))):  # as the SDK keeps a link
            return
        if self._ended("Tried calling _add_link on an ended span."):
            return
        limits = self.tracer.limits
        stored = self._bounded(limits.max_link_attributes, attributes, limits.max_attribute_length)
        if self._links is None:
            self._links = []
        self._links.append(Link(context=context, attributes=stored))

    def update_name(self, name: str) -> None:
        if not self._ended("Tried calling update_name on an ended span."):
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("Tried calling set_status on an ended span."):
            return
        code = status.status_code if isinstance(status, Status) else status
        if self._status.status_code is StatusCode.OK or code is StatusCode.UNSET:  # OK is final; UNSET changes nothing
            return
        if isinstance(status, Status):
            if description is not None:
                logger.warning("Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                               description)
            self._status = status
        else:
            self._status = Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        module, qualname = type(exception).__module__, type(exception).__qualname__
        recorded: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        if exc_val is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self.end_time = end_time if end_time is not None else _time_ns()
        tracer = self.tracer
        tracer.processor.on_end(self)  # type: ignore[arg-type]  # read as a span: see the class
        late = tracer.provider.added_by_app
        if late:  # added while this span ran (new spans are the SDK's then): they get it as the SDK hands it over
            readable = self.readable()
            for processor in late:
                processor.on_end(readable)

    @staticmethod
    def _bounded(count_limit: int | None, attributes: Attributes, length_limit: int | None) -> BoundedAttributes:
        """Attributes validated, copied and limited when they are set or added, as the SDK's span does: the SDK's
        own `BoundedAttributes`, frozen."""
        return BoundedAttributes(count_limit, attributes, max_value_len=length_limit, immutable=True)

    def _ended(self, warning: str) -> bool:
        if self.end_time is None:
            return False
        logger.warning(warning)
        return True

    # --- lmscope's processors ---------------------------------------------------------------------------

    def readable(self) -> ReadableSpan:
        """The SDK's finished span for this record, built the first time it is asked for, in the asking thread
        (a batch worker, the console): the attributes handed over built and stored in call order."""
        built = self._built
        if built is None:
            built = self._build(self.entries)  # no longer changes: the span has ended
            with _BUILD.lock:  # held for the store only: the build runs the app's `scrub_callback`
                if self._built is None:
                    # The copies taken in the call go, and a recorded parent is no longer held.
                    self._built, self.entries, self._parent = built, [], built.parent
                built = self._built
        return built

    def _build(self, entries: list[Any]) -> ReadableSpan:
        limits = self.tracer.limits
        # Set one by one as the SDK's span sets them (a key set again moves to the end, the oldest key goes when the
        # count limit is reached, a value of the wrong type is dropped and leaves the earlier one). Left mutable, as
        # the SDK's own finished span holds it until `end()` freezes it: exporters read it through
        # `ReadableSpan.attributes`, a read-only view, and nobody else holds it.
        stored = BoundedAttributes(limits.max_span_attributes, immutable=False,
                                   max_value_len=limits.max_span_attribute_length)
        at, count = 0, len(entries)
        while at < count:
            entry = entries[at]
            try:
                if type(entry) is int:  # a builder kept flat (`hand_over`): its function and arguments follow
                    at += entry + 1
                    attributes = entries[at - entry](*entries[at - entry + 1:at])
                else:
                    at += 1
                    attributes = entry() if callable(entry) else entry
            except Exception as exc:  # noqa: BLE001 - the span goes out without these, never with content unscrubbed
                report_internal_error("span attributes built on export", exc)
                continue
            for key, value in attributes.items():
                stored[key] = value
            if type(attributes) is BoundedAttributes:  # set on the span itself: what the SDK refused then
                stored.dropped += attributes.dropped
        return ReadableSpan(
            name=self.name, context=self.context, parent=self.parent, resource=self.tracer.provider.resource,
            attributes=stored,
            events=BoundedList.from_seq(limits.max_events, self._events or ()),
            links=BoundedList.from_seq(limits.max_links, self._links or ()),
            kind=self.kind, instrumentation_info=self.tracer.instrumentation_info, status=self._status,
            start_time=self.start_time, end_time=self.end_time,
            instrumentation_scope=self.tracer.instrumentation_scope)


class _BuildLock:
    """The lock `RecordedSpan.readable` takes for a moment; a new one in a forked child (a worker may have held it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        renew_after_fork(self)

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()


_BUILD = _BuildLock()


def build_lock() -> threading.Lock:
    """The lock `RecordedSpan.readable` takes for a moment (a flush in a signal handler checks it is free)."""
    return _BUILD.lock


