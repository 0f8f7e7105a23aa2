"""Start SDK spans without asking the default sampler, whose answer is known in advance.

`Tracer.start_span` asks its sampler about every span. With the SDK's default sampler,
`ParentBased(root=ALWAYS_ON)` with its default delegates, the answer is fixed: a root span or the child
of a sampled parent is recorded and sampled, the child of an unsampled parent is dropped, and the parent's
trace state carries over. Asking still costs a sampler chain, two more current-span lookups, a
`SamplingResult` and new flag objects: about 4.5 µs per span inside a DSPy call, ~30 µs of a 3-step
program call.

`span_starter(tracer)` returns a function that starts spans as `tracer.start_span(name, context, kind)`
would. For an SDK `Tracer` with that default sampler, it builds the same `SpanContext` and the same SDK
span, and starts it the same way, so processors' `on_start`/`on_end` see what they always see. It does this
only on an SDK release whose code was checked against this module (`_CHECKED_SDK_VERSIONS`), and only while
the names used by `Tracer.start_span`, `ParentBased.should_sample` and `StaticSampler.should_sample` still
match the fingerprint taken then (a guard against a patched SDK; the names alone would miss a change of logic,
hence the version). Anything else (another sampler or SDK version, a disabled tracer) goes to
`tracer.start_span`.
tests/telemetry/test_span_start.py compares both paths span by span.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags, get_current_span

StartSpan = Callable[..., Span]
"""(name, context, kind=SpanKind.INTERNAL) -> a started span."""

# opentelemetry-sdk releases whose start_span, _Span and sampling code `start` below was checked against
# (1.45.0-1.45.2 ship identical trace/__init__.py and sampling.py). A new release gets the plain start_span
# until someone checks `start` against it and adds it here (and to the dev extra's pin).
_CHECKED_SDK_VERSIONS = frozenset({"1.45.0", "1.45.1", "1.45.2"})
# sha1 of repr((co_names of Tracer.start_span, ParentBased.should_sample, StaticSampler.should_sample)) on those
# releases (Python 3.10-3.13).
_KNOWN_SDK_FINGERPRINTS = frozenset({"ae3c316945cf"})


def span_starter(tracer: Any) -> StartSpan:
    """`tracer.start_span`, or the equivalent fast path when the tracer is an SDK one with the default sampler."""
    try:
        from opentelemetry.sdk.trace import Tracer, _Span, sampling
        from opentelemetry.sdk.version import __version__ as sdk_version

        eligible = (type(tracer) is Tracer and sdk_version in _CHECKED_SDK_VERSIONS
                    and _default_sampler(tracer.sampler, sampling)
                    and _sdk_fingerprint(Tracer, sampling) in _KNOWN_SDK_FINGERPRINTS)
    except (ImportError, AttributeError):
        eligible = False
    if not eligible:
        return tracer.start_span
    sampler = tracer.sampler
    sampled_decision, dropped_decision = sampling.Decision.RECORD_AND_SAMPLE, sampling.Decision.DROP
    flags = {(sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                                           | (TraceFlags.RANDOM_TRACE_ID if random else 0))
             for sampled in (False, True) for random in (False, True)}

    def start(name: str, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Span:
        # Per call, as the SDK reads them per call: the sampler, the tracer config, ids, resource, processors.
        parent = get_current_span(context).get_span_context()
        if tracer.sampler is not sampler or not tracer._is_enabled() or type(parent) is not SpanContext:
            return tracer.start_span(name, context, kind)
        ids = tracer.id_generator
        if parent.is_valid:
            trace_id, parent_flags, trace_state = parent.trace_id, parent.trace_flags, parent.trace_state
            sampled, random = parent_flags.sampled, parent_flags.random_trace_id  # ParentBased: follow the parent
        else:
            parent, trace_id, trace_state = None, ids.generate_trace_id(), None
            sampled, random = True, ids.is_trace_id_random()  # the root sampler is ALWAYS_ON
        span_context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                                   trace_flags=flags[sampled, random], trace_state=trace_state)
        record_end_metrics = tracer._tracer_metrics.start_span(parent, sampled_decision if sampled else dropped_decision)
        if not sampled:
            return NonRecordingSpan(context=span_context)
        span = _Span(name=name, context=span_context, parent=parent, sampler=sampler, resource=tracer.resource,
                     attributes=None, span_processor=tracer.span_processor, kind=kind, links=(),
                     instrumentation_info=tracer.instrumentation_info, limits=tracer._span_limits,
                     instrumentation_scope=tracer._instrumentation_scope, record_end_metrics=record_end_metrics)
        span.start(parent_context=context)
        return span

    return start


def _default_sampler(sampler: Any, sampling: Any) -> bool:
    """`ParentBased(ALWAYS_ON)` with every delegate at its default: what a TracerProvider gets unconfigured."""
    always_on, always_off = sampling.ALWAYS_ON, sampling.ALWAYS_OFF
    return (type(sampler) is sampling.ParentBased and sampler._root is always_on
            and sampler._remote_parent_sampled is always_on and sampler._remote_parent_not_sampled is always_off
            and sampler._local_parent_sampled is always_on and sampler._local_parent_not_sampled is always_off)


def _sdk_fingerprint(tracer_class: Any, sampling: Any) -> str:
    names = (tracer_class.start_span.__code__.co_names, sampling.ParentBased.should_sample.__code__.co_names,
             sampling.StaticSampler.should_sample.__code__.co_names)
    return hashlib.sha1(repr(names).encode()).hexdigest()[:12]
