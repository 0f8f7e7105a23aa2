"""Contexts lmscope builds in one step are the contexts OpenTelemetry's public calls build, and lmscope reads the app's
suppression as the API does, however the app set it."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider

from lmscope.telemetry._one_step_context import SUPPRESSED, instrumentation_suppressed, span_in, with_span

OWN_KEY = otel_context.create_key("test-own-entry")
OTHER_KEY = otel_context.create_key("test-other-entry")


def test_a_span_and_entries_set_in_one_step_make_the_context_the_public_calls_make() -> None:
    span = TracerProvider().get_tracer("test").start_span("current")
    before = otel_context.set_value(OTHER_KEY, "kept", trace.set_span_in_context(trace.INVALID_SPAN))

    made = with_span(span, before, {OWN_KEY: 1}, {OTHER_KEY: "replaced"})

    by_public_calls = otel_context.set_value(OTHER_KEY, "replaced", otel_context.set_value(
        OWN_KEY, 1, trace.set_span_in_context(span, before)))
    assert type(made) is Context
    assert dict(made) == dict(by_public_calls)
    assert trace.get_current_span(made) is span
    assert dict(before) == dict(otel_context.set_value(OTHER_KEY, "kept",
                                                       trace.set_span_in_context(trace.INVALID_SPAN)))


def test_the_span_in_a_context_is_the_one_get_current_span_reads() -> None:
    span = TracerProvider().get_tracer("test").start_span("current")
    with_it, without = trace.set_span_in_context(span), otel_context.set_value(OTHER_KEY, 1, Context())
    assert span_in(with_it) is trace.get_current_span(with_it) is span
    assert span_in(without) is trace.get_current_span(without) is trace.INVALID_SPAN
    token = otel_context.attach(with_it)
    try:
        assert span_in(None) is trace.get_current_span() is span
    finally:
        otel_context.detach(token)
    assert span_in(None) is trace.get_current_span() is trace.INVALID_SPAN


@pytest.mark.parametrize("how", ["suppress_instrumentation()", "each entry it sets, alone",
                                 "the plain key older instrumentations set", "nothing"])
def test_the_apps_suppression_reads_as_is_instrumentation_enabled_reads_it(how: str) -> None:
    if how == "suppress_instrumentation()":
        contexts = [_inside_suppression()]
    elif how == "each entry it sets, alone":
        assert len(SUPPRESSED) >= 1
        contexts = [Context({key: value}) for key, value in SUPPRESSED.items()]
    elif how == "the plain key older instrumentations set":
        contexts = [otel_context.set_value("suppress_instrumentation", True, Context())]
    else:
        contexts = [Context(), otel_context.set_value("suppress_instrumentation", False, Context())]
    for ctx in contexts:
        token = otel_context.attach(ctx)
        try:
            expected = not is_instrumentation_enabled()
        finally:
            otel_context.detach(token)
        assert instrumentation_suppressed(ctx) is expected
        assert expected is (how != "nothing")


def _inside_suppression() -> Context:
    with suppress_instrumentation():
        return otel_context.get_current()
