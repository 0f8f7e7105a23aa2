"""`LightSpan`: an OpenTelemetry SDK span that costs the program little and builds its attributes later.

An SDK `_Span` allocates, at start, an attribute mapping, two bounded lists, four locks and an instance dict,
and copies itself into a new `ReadableSpan` at end; inside DSPy's call stacks that is ~14 µs per span, and
the lmscope span contract then adds ~150 attribute values per program call. A `LightSpan` is one object with
slots. At start it holds only its identity and timing. Events, links and the attribute mapping (the SDK's own
`BoundedAttributes` and `BoundedList`) are made when first needed, under one lock shared by all light spans.

Attributes are deferred: `defer(span, build, *args)` queues `build(*args)`, and the queue is applied, in
order, through the SDK's `BoundedAttributes._set_items` (so its cleaning, limits and key order hold), the first
time anything reads or writes the span's attributes. For a batch processor that is its export thread; for a
synchronous one, the span's end. A write from anyone else (another instrumentation, the user's code) first
applies what is queued, so every reader sees what eager `set_attributes` calls at the deferral points would
have stored. The arguments must be immutable snapshots (the callers' job). A builder that raises is reported
and its attributes are left out; the span and the other builders' attributes are kept. For any other span,
`defer` builds and stores at once.

It subclasses the SDK's `Span`, so processors and exporters see an SDK span: `on_start` gets it live, `on_end`
gets it ended (an ended span refuses every change, so it reads like the SDK's end-time copy). The methods it
inherits (`set_status`, `update_name`, `record_exception`, `__exit__`, the `ReadableSpan` properties) read the
same private field names the SDK's own span has; `span_start.py` only makes light spans on SDK releases
checked against this module. tests/telemetry/test_light_span.py compares it with the SDK's span call by call.
"""

from __future__ import annotations

import logging
import threading
from time import time_ns
from typing import Any, Callable, Mapping, Sequence

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, Span, SynchronousMultiSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status, StatusCode

from ._internal_errors import report_internal_error
from ._span_attributes import store_attributes, update_plain

try:
    from opentelemetry.sdk.trace import _is_valid_link
except ImportError:  # pragma: no cover - an SDK without it: light spans are not made there (span_start.py)
    def _is_valid_link(context: Any, attributes: Any) -> bool:
        return bool(context and (context.is_valid or (attributes or context.trace_state)))

Build = Callable[..., "dict[str, Any]"]

_sdk_logger = logging.getLogger("opentelemetry.sdk.trace")
_UNSET = Status(StatusCode.UNSET)
_EMPTY: tuple[Any, ...] = ()

# One lock for every light span's changes (the SDK has one per span): a span is changed by the thread that runs it,
# so it is uncontended. A second one while deferred builders run, taken after the first when a write applies what
# is queued, never the other way round: an export thread building a batch's attributes never holds up `end()`.
_lock = threading.RLock()
_build_lock = threading.Lock()


class LightSpan(Span):
    # Slots for what every span sets; what few spans ever set (events, links, a status, the attribute mapping
    # before export) falls back to the class defaults below until set, at which point an instance dict appears.
    # `context` is a slot (the SDK: a property over `_context`): every processor's `on_end` reads it first.
    __slots__ = ("_name", "context", "_kind", "_parent", "_start_time", "_end_time", "_tracer_fields",
                 "_record_end_metrics", "_pending")
    _pending: list[Any] | None

    _lock = _lock
    _record_exception = True
    _set_status_on_exception = True
    _sampler = None
    _trace_config = None
    _status = _UNSET
    _bounded: BoundedAttributes | None = None
    _event_list: BoundedList | None = None
    _link_list: BoundedList | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("LightSpan is made by lmscope's span starter (start_light_span), not constructed")

    _context = property(lambda self: self.context)

    def get_span_context(self) -> trace_api.SpanContext:
        return self.context

    # What the SDK's span stores per span and a light span shares with every span of its tracer.
    _resource = property(lambda self: self._tracer_fields.resource)
    _instrumentation_scope = property(lambda self: self._tracer_fields.scope)
    _instrumentation_info = property(lambda self: self._tracer_fields.info)
    _span_processor = property(lambda self: self._tracer_fields.processor)
    _limits = property(lambda self: self._tracer_fields.limits)

    # --- attributes --------------------------------------------------------------------------------
    @property  # type: ignore[override]
    def _attributes(self) -> BoundedAttributes:
        """The SDK's attribute mapping, with every deferred builder applied."""
        bounded = self._bounded
        if bounded is None or self._pending:
            bounded = self._materialize()
        return bounded

    def _materialize(self) -> BoundedAttributes:
        with _build_lock:
            return self._apply_pending()

    def _apply_pending(self) -> BoundedAttributes:
        bounded = self._bounded
        if bounded is None:
            limits = self._limits
            bounded = self._bounded = BoundedAttributes(limits.max_span_attributes, None, immutable=False,
                                                        max_value_len=limits.max_span_attribute_length)
        pending = self._pending
        if pending:
            immutable, bounded._immutable = bounded._immutable, False  # built now, but belonging to before the end
            try:
                for index in range(0, len(pending), 2):
                    build, args = pending[index], pending[index + 1]
                    try:
                        attributes = build(*args)
                    except Exception as exc:  # noqa: BLE001 - a builder's fault costs its attributes, not the span
                        report_internal_error(f"span attributes ({getattr(build, '__name__', build)})", exc)
                        continue
                    if attributes and not update_plain(bounded, attributes):
                        bounded._set_items(attributes)
            finally:
                self._pending = None
                bounded._immutable = immutable
        return bounded

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        with _lock:
            if self._end_time is not None:
                _sdk_logger.warning("Setting attribute on ended span.")
                return
            self._materialize()._set_items(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        with _lock:
            if self._end_time is not None:
                _sdk_logger.warning("Setting attribute on ended span.")
                return
            self._materialize()[key] = value

    # --- events and links ----------------------------------------------------------------------------
    @property  # type: ignore[override]
    def _events(self) -> Sequence[Event]:
        return self._event_list if self._event_list is not None else _EMPTY

    @property  # type: ignore[override]
    def _links(self) -> Sequence[trace_api.Link]:
        return self._link_list if self._link_list is not None else _EMPTY

    def _add_event(self, event: Any) -> None:
        self._append("_event_list", self._limits.max_events, event, "_add_event")

    def _append(self, slot: str, limit: int | None, item: Any, caller: str) -> None:
        """Append to the events or links, made on first use; what the SDK's `@_check_span_ended` methods do."""
        with _lock:
            if self._end_time is not None:
                _sdk_logger.warning("Tried calling %s on an ended span.", caller)
                return
            items = getattr(self, slot)
            if items is None:
                items = BoundedList(limit)
                setattr(self, slot, items)
            items.append(item)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        limits = self._limits
        attributes = BoundedAttributes(limits.max_event_attributes, attributes,
                                       max_value_len=limits.max_attribute_length, immutable=True)
        self._add_event(Event(name=name, attributes=attributes, timestamp=timestamp))

    def _add_link(self, link: trace_api.Link) -> None:
        self._append("_link_list", self._limits.max_links, link, "_add_link")

    def add_link(self, context: trace_api.SpanContext, attributes: Any = None) -> None:
        if not _is_valid_link(context, attributes):
            return
        limits = self._limits
        attributes = BoundedAttributes(limits.max_link_attributes, attributes,
                                       max_value_len=limits.max_attribute_length, immutable=True)
        self._add_link(trace_api.Link(context=context, attributes=attributes))

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, start_time: int | None = None, parent_context: Any = None) -> None:
        _sdk_logger.warning("Calling start() on a started span.")

    def end(self, end_time: int | None = None) -> None:
        with _lock:
            if self._end_time is not None:
                _sdk_logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            if self._bounded is not None:
                self._bounded._immutable = True
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        hooks = self._tracer_fields.hooks()
        for on_ending in hooks.on_ending:
            on_ending(self)
        for on_end in hooks.on_end:
            on_end(self)

    def _readable_span(self) -> LightSpan:
        return self


class TracerFields:
    """What a tracer gives each of its spans, and its processors' hooks, skipping those that do nothing.

    The SDK's `SynchronousMultiSpanProcessor` calls `on_start`, `_on_ending` and `on_end` of each processor
    it holds at that moment. `hooks()` gives the same calls for the processors it holds now, minus the
    `on_start`/`_on_ending` methods known to be empty (the SDK's base class and batch/simple processors, and
    lmscope's own), recomputed whenever a processor is added (the SDK replaces its tuple then).
    """

    __slots__ = ("resource", "scope", "info", "processor", "limits", "_hooks")

    def __init__(self, tracer: Any) -> None:
        self.resource, self.scope = tracer.resource, tracer._instrumentation_scope
        self.info, self.processor, self.limits = tracer.instrumentation_info, tracer.span_processor, tracer._span_limits
        processor = self.processor
        self._hooks = _Hooks(processor, processor._span_processors
                             if type(processor) is SynchronousMultiSpanProcessor else None)

    def hooks(self) -> _Hooks:
        hooks = self._hooks
        if hooks.processors is not None and self.processor._span_processors is not hooks.processors:
            hooks = self._hooks = _Hooks(self.processor, self.processor._span_processors)
        return hooks


class _Hooks:
    __slots__ = ("processors", "on_start", "on_ending", "on_end")

    def __init__(self, multi: Any, processors: tuple[Any, ...] | None) -> None:
        self.processors = processors
        if processors is None:  # another multi-processor: its own dispatch
            self.on_start, self.on_ending, self.on_end = (multi.on_start,), (multi._on_ending,), (multi.on_end,)
            return
        self.on_start = tuple(sp.on_start for sp in processors if type(sp).on_start not in _EMPTY_HOOKS)
        self.on_ending = tuple(sp._on_ending for sp in processors if type(sp)._on_ending not in _EMPTY_HOOKS)
        self.on_end = tuple(sp.on_end for sp in processors)


def _empty_hooks() -> frozenset[Any]:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from ._batch_export import BatchExportProcessor

    hooks = set()
    for cls in (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor, BatchExportProcessor):
        for name in ("on_start", "_on_ending"):
            function = getattr(cls, name)
            if function.__code__.co_code == _empty.__code__.co_code:  # `pass` and nothing else
                hooks.add(function)
    return frozenset(hooks)


def _empty(self: Any, *args: Any, **kwargs: Any) -> None:
    pass


_EMPTY_HOOKS = _empty_hooks()


_new = object.__new__


def start_light_span(name: str, context: trace_api.SpanContext, parent: trace_api.SpanContext | None,
                     kind: trace_api.SpanKind, fields: TracerFields, record_end_metrics: Callable[[], None] | None,
                     parent_context: Any) -> LightSpan:
    """A started `LightSpan`, handed to the processors' `on_start` (a function, not a constructor: one call)."""
    span = _new(LightSpan)
    span._name = name
    span.context = context
    span._kind = kind
    span._parent = parent
    span._tracer_fields = fields
    span._record_end_metrics = record_end_metrics
    span._end_time = None
    span._pending = None
    span._start_time = time_ns()
    for on_start in fields.hooks().on_start:
        on_start(span, parent_context=parent_context)
    return span


def defer(span: Any, build: Build, *args: Any) -> None:
    """`span.set_attributes(build(*args))`, run when the span's attributes are first read or written."""
    if type(span) is LightSpan and span._end_time is None:
        pending = span._pending  # build, args, build, args, ...: one list, no pair tuples (fewer objects for the GC)
        if pending is None:
            span._pending = [build, args]
        else:
            pending.append(build)
            pending.append(args)
        return
    try:
        built = build(*args)
    except Exception as exc:  # noqa: BLE001
        report_internal_error(f"span attributes ({getattr(build, '__name__', build)})", exc)
        return
    if built:
        store_attributes(span, built)
