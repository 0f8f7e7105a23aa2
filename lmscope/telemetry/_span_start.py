"""Start spans without asking the default sampler, whose answer is known in advance, as light spans.

`Tracer.start_span` asks its sampler about every span. With the SDK's default sampler,
`ParentBased(root=ALWAYS_ON)` with its default delegates, the answer is fixed: a root span or the child
of a sampled parent is recorded and sampled, the child of an unsampled parent is dropped, and the parent's
trace state carries over. Asking still costs a sampler chain, two more current-span lookups, a
`SamplingResult` and new flag objects.

`span_starter(tracer)` returns a function that starts spans as `tracer.start_span(name, context, kind)`
would. For an SDK `Tracer` with that default sampler, it builds the same `SpanContext`, makes a `LightSpan`
(light_span.py: an SDK `Span` subclass with deferred attributes) on the tracer's resource, scope, limits and
processors, and hands it to the processors' `on_start` as the SDK does. It does this only on an SDK release
whose code was checked against this module and light_span.py (`_CHECKED_SDK_VERSIONS`), and only while the
names used by the SDK code they stand in for or build on still match the fingerprint taken then (a guard
against a patched SDK; the names alone would miss a change of logic, hence the version). Anything else
(another sampler or SDK version, a disabled tracer) goes to `tracer.start_span`.
tests/telemetry/test_span_start.py compares both paths span by span.
"""

from __future__ import annotations

import hashlib
from random import getrandbits
from typing import Any, Callable

from opentelemetry.context import Context
from opentelemetry.trace import (INVALID_SPAN_CONTEXT, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags,
                                 get_current_span)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from ._light_span import LightSpan, TracerFields, start_light_span

StartSpan = Callable[..., Span]
"""(name, context, kind=SpanKind.INTERNAL) -> a started span."""

# opentelemetry-sdk releases whose start_span, Span and sampling code `start` and LightSpan were checked against
# (1.45.0-1.45.2 ship identical trace/__init__.py and sampling.py). A new release gets the plain start_span
# until someone checks them against it and adds it here (and to the dev extra's pin).
_CHECKED_SDK_VERSIONS = frozenset({"1.45.0", "1.45.1", "1.45.2"})
# sha1 of repr(co_names of the functions `_sdk_fingerprint` lists) on those releases (Python 3.10-3.13).
_KNOWN_SDK_FINGERPRINTS = frozenset({"c0f506fd904d"})


def span_starter(tracer: Any) -> StartSpan:
    """`tracer.start_span`, or the equivalent light path for an SDK tracer with the default sampler."""
    try:
        from opentelemetry.sdk.trace import ReadableSpan, Tracer, sampling
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.version import __version__ as sdk_version
        from opentelemetry.trace.propagation import _SPAN_KEY  # private names: a missing one means the plain path
        from opentelemetry.trace.span import _SPAN_ID_MAX_VALUE as _MAX_SPAN_ID
        from opentelemetry.trace.span import _TRACE_ID_MAX_VALUE as _MAX_TRACE_ID

        eligible = (type(tracer) is Tracer and sdk_version in _CHECKED_SDK_VERSIONS
                    and _default_sampler(tracer.sampler, sampling)
                    and _sdk_fingerprint(Tracer, ReadableSpan, sampling) in _KNOWN_SDK_FINGERPRINTS)
    except (ImportError, AttributeError):
        eligible = False
    if not eligible:
        return tracer.start_span
    sampler = tracer.sampler
    new_tuple = tuple.__new__
    sampled_decision, dropped_decision = sampling.Decision.RECORD_AND_SAMPLE, sampling.Decision.DROP
    flags = {(sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                                           | (TraceFlags.RANDOM_TRACE_ID if random else 0))
             for sampled in (False, True) for random in (False, True)}
    follow = _ParentFlags(flags)
    fields = TracerFields(tracer)  # a Tracer's resource, scope, processor and limits are never reassigned
    tracer_metrics = tracer._tracer_metrics
    count_spans = type(tracer_metrics) is not NoOpTracerMetrics  # set when the tracer is made

    def start(name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Span:
        # Per call, as the SDK reads them per call: the sampler, the tracer config, ids.
        found = context.get(_SPAN_KEY) if context is not None else get_current_span()  # get_current_span(context)
        if type(found) is LightSpan:
            parent = found.context
        else:
            parent = found.get_span_context() if isinstance(found, Span) else INVALID_SPAN_CONTEXT
        if tracer.sampler is not sampler or not tracer._tracer_config.is_enabled or type(parent) is not SpanContext:
            return tracer.start_span(name, context, kind)
        ids = tracer.id_generator
        # SpanContext is a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
        if parent[5]:
            trace_id, trace_state = parent[0], parent[4]
            sampled, child_flags = follow[parent[3]]  # ParentBased: follow the parent
        else:
            parent, trace_id, trace_state = None, ids.generate_trace_id(), DEFAULT_TRACE_STATE
            sampled, child_flags = True, flags[True, ids.is_trace_id_random()]  # the root sampler is ALWAYS_ON
        span_id = getrandbits(64) if type(ids) is RandomIdGenerator else 0
        if not span_id:  # another generator, or the one draw in 2**64 that RandomIdGenerator would redraw
            span_id = ids.generate_span_id()
        if 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID:  # what SpanContext() checks
            span_context = new_tuple(SpanContext, (trace_id, span_id, False, child_flags, trace_state, True))
        else:
            span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=child_flags,
                                       trace_state=trace_state)
        record_end_metrics = tracer_metrics.start_span(parent, sampled_decision if sampled else dropped_decision) \
            if count_spans else None
        if not sampled:
            return NonRecordingSpan(context=span_context)
        return start_light_span(name, span_context, parent, kind, fields, record_end_metrics, context)

    return start


class _ParentFlags(dict):
    """parent trace flags -> (sampled, the child's flags): what ParentBased and the SDK derive from them."""

    def __init__(self, flags: dict[tuple[bool, bool], TraceFlags]) -> None:
        super().__init__()
        self._flags = flags

    def __missing__(self, parent_flags: TraceFlags) -> tuple[bool, TraceFlags]:
        sampled = parent_flags.sampled
        made = self[parent_flags] = (sampled, self._flags[sampled, parent_flags.random_trace_id])
        return made


def _default_sampler(sampler: Any, sampling: Any) -> bool:
    """`ParentBased(ALWAYS_ON)` with every delegate at its default: what a TracerProvider gets unconfigured."""
    always_on, always_off = sampling.ALWAYS_ON, sampling.ALWAYS_OFF
    return (type(sampler) is sampling.ParentBased and sampler._root is always_on
            and sampler._remote_parent_sampled is always_on and sampler._remote_parent_not_sampled is always_off
            and sampler._local_parent_sampled is always_on and sampler._local_parent_not_sampled is always_off)


def _sdk_fingerprint(tracer_class: Any, readable_class: Any, sampling: Any) -> str:
    """The names used by the SDK code `start` and `LightSpan` stand in for or build on."""
    from opentelemetry.sdk.trace import Span as SdkSpan
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    functions = (tracer_class.start_span, sampling.ParentBased.should_sample, sampling.StaticSampler.should_sample,
                 SdkSpan.__init__, SdkSpan.start, SdkSpan.end, SdkSpan.set_status, SdkSpan.update_name,
                 SdkSpan.record_exception, SdkSpan.__exit__, readable_class.__init__, readable_class.to_json,
                 tracer_class._is_enabled, tracer_class.__init__, get_current_span, SpanContext.__new__,
                 RandomIdGenerator.generate_span_id)
    return hashlib.sha1(repr(tuple(function.__code__.co_names for function in functions)).encode()).hexdigest()[:12]
