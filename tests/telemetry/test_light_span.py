"""A `LightSpan` does what the SDK's own span does, and its deferred attributes read as eager ones.

Each case runs the same steps on a span the SDK made (`tracer.start_span`) and on a light span
(`span_starter(tracer)`), on providers with tight limits so every limit is reached, and compares what the
exporter got and what the SDK logged. On the SDK span `defer` builds at once: that is the reference.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from lmscope.telemetry import _internal_errors as internal_errors
from lmscope.telemetry._light_span import LightSpan, defer
from lmscope.telemetry._span_start import span_starter

LIMITS = dict(max_span_attributes=4, max_span_attribute_length=5, max_events=2, max_links=2,
              max_event_attributes=2, max_link_attributes=2)


def finished(steps: Callable[[Any], None], *, light: bool, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """What the exporter got from one span driven by `steps`, and the SDK's log lines."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(**LIMITS))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test", "1.0")
    start = span_starter(tracer) if light else tracer.start_span
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        span = start("step")
        assert (type(span) is LightSpan) == light
        steps(span)
        if span.is_recording():
            span.end()
    (done,) = exporter.get_finished_spans()
    return {
        "name": done.name, "kind": done.kind, "attributes": list(done.attributes.items()),
        "dropped_attributes": done.dropped_attributes,
        "events": [(e.name, dict(e.attributes), e.dropped_attributes) for e in done.events],
        "dropped_events": done.dropped_events,
        "links": [(link.context.span_id, dict(link.attributes)) for link in done.links],
        "dropped_links": done.dropped_links,
        "status": (done.status.status_code, done.status.description),
        "resource": done.resource, "scope": done.instrumentation_scope,
        "json_keys": sorted(__import__("json").loads(done.to_json())),
        "logs": [record.getMessage() for record in caplog.records],
    }


def same(steps: Callable[[Any], None], caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    light = finished(steps, light=True, caplog=caplog)
    assert light == finished(steps, light=False, caplog=caplog)
    return light


def test_attributes_are_cleaned_limited_and_ordered_alike(caplog):
    def steps(span):
        span.set_attribute("a", [1, 2])  # a list is stored as a tuple
        span.set_attributes({"b": "too long a value", "c": object()})  # truncated; an object becomes its str()
        span.set_attribute("", 1)  # an invalid key
        span.set_attribute("a", "again")  # a key set again moves to the end
        span.set_attributes({"d": 4, "e": 5, "f": 6})  # past the limit of 4: the oldest go

    result = same(steps, caplog)
    assert result["attributes"] == [("a", "again"), ("d", 4), ("e", 5), ("f", 6)]
    assert result["dropped_attributes"] == 3  # the empty key, and "b" and "c" pushed out by "e" and "f"


def test_deferred_builders_read_like_eager_set_attributes_at_the_same_points(caplog):
    def steps(span):
        defer(span, lambda: {"first": 1, "shared": "builder"})
        span.set_attribute("shared", "other")  # a write from elsewhere lands after what was deferred before it
        defer(span, lambda key: {key: True}, "last")

    result = same(steps, caplog)
    assert result["attributes"] == [("first", 1), ("shared", "other"), ("last", True)]


def test_deferred_builders_run_once_when_first_read():
    runs = []

    def build():
        runs.append(threading.current_thread().name)
        return {"built": 1}

    exporter = InMemorySpanExporter()  # stores spans without reading them, like a queue
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = span_starter(provider.get_tracer("t"))("s")
    defer(span, build)
    span.end()
    assert runs == []  # nothing yet: the program's thread has not paid for it
    (done,) = exporter.get_finished_spans()
    reader = threading.Thread(target=lambda: dict(done.attributes), name="export")
    reader.start()
    reader.join()
    assert dict(done.attributes) == {"built": 1}
    assert runs == ["export"]  # built once, by the first reader


def test_a_failing_builder_costs_its_attributes_only(caplog, monkeypatch):
    def explode():
        raise RuntimeError("forced")

    def steps(span):
        defer(span, lambda: {"kept": 1})
        defer(span, explode)
        defer(span, lambda: {"also kept": 2})

    for light in (True, False):
        monkeypatch.setattr(internal_errors, "_reported", set())
        with caplog.at_level(logging.WARNING, logger="lmscope"):
            result = finished(steps, light=light, caplog=caplog)
        assert result["attributes"] == [("kept", 1), ("also kept", 2)]
        assert "forced" in caplog.text


def test_events_links_status_and_name_alike(caplog):
    other = SpanContext(2**70, 9, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))

    def steps(span):
        span.add_event("one", {"x": 1, "y": 2, "z": 3})  # over the event attribute limit
        span.add_link(other, {"why": "because"})
        span.add_link(SpanContext(0, 0, is_remote=False))  # an invalid link is ignored
        span.record_exception(ValueError("bad"), escaped=True)
        span.add_event("three")  # past max_events: the oldest goes
        span.set_status(Status(StatusCode.ERROR, "ValueError: bad"))
        span.set_status(StatusCode.UNSET)  # ignored
        span.update_name("renamed")

    result = same(steps, caplog)
    assert [name for name, _, _ in result["events"]] == ["exception", "three"]
    assert result["dropped_events"] == 1
    assert result["links"] == [(9, {"why": "because"})]
    assert result["status"] == (StatusCode.ERROR, "ValueError: bad")
    assert result["name"] == "renamed"


def test_an_ended_span_refuses_changes_alike(caplog):
    def steps(span):
        span.set_attribute("before", 1)
        span.end()
        span.set_attribute("after", 2)
        span.add_event("after")
        span.set_status(StatusCode.ERROR)
        span.update_name("after")
        span.end()

    result = same(steps, caplog)
    assert result["attributes"] == [("before", 1)] and result["events"] == [] and result["name"] == "step"
    assert "Calling end() on an ended span." in result["logs"]


def test_the_context_manager_records_the_exception_alike(caplog):
    def steps(span):
        with pytest.raises(KeyError):
            with span:
                raise KeyError("missing")

    result = same(steps, caplog)
    assert result["status"] == (StatusCode.ERROR, "KeyError: 'missing'")
    assert result["events"][0][0] == "exception"


def test_two_export_threads_reading_at_once_both_see_every_attribute():
    # Two exporters mean two batch threads that may read one span together; neither may see half of it.
    provider = TracerProvider()
    span = span_starter(provider.get_tracer("t"))("s")
    for index in range(200):
        defer(span, lambda i: {f"k{i}": i}, index)
    span.end()
    seen: list[int] = []
    barrier = threading.Barrier(2)

    def read():
        barrier.wait()
        seen.append(len(dict(span.attributes)))

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [128, 128]  # the SDK's default limit, applied to 200 deferred keys
    assert span.dropped_attributes == 72


def test_defer_on_other_spans_builds_at_once():
    built = []
    defer(NonRecordingSpan(SpanContext(1, 2, False)), lambda: built.append(1) or {"a": 1})
    assert built == [1]


def test_links_and_events_given_at_start_do_not_apply_here():
    # lmscope never passes links or attributes to start_span; a light span starts without them, like the SDK's.
    provider = TracerProvider()
    span = span_starter(provider.get_tracer("t"))("s")
    assert span.links == () and span.events == () and dict(span.attributes) == {}
    assert isinstance(Link(span.get_span_context()), Link)


def test_a_light_span_is_not_constructed_directly():
    with pytest.raises(TypeError, match="span starter"):
        LightSpan("name")
