"""The export pipeline against down, hanging and failing backends: bounded memory, one warning, counted drops.

Backends are real local servers on 127.0.0.1 (tests/otlp_servers.py) and the exporters are the OTel SDK's
real OTLP exporters, built by lmscope's own factories. DSPy programs against such backends are in
tests/test_backend_down.py.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.telemetry._batch_export import (
    SHUTDOWN_TIMEOUT_S,
    BatchExportProcessor,
    drop_report,
    flush_processors,
    shutdown_processors,
)
from lmscope.telemetry._export_guard import GuardedExporter, safe_reason
from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._pipeline import batch_processor

pytestmark = pytest.mark.usefixtures("clean_env")


def otlp_processor(url: str, *, name: str = "otlp", protocol: str = "http/protobuf",
                   max_queue_size: int = 2048) -> BatchExportProcessor:
    options = resolve_options(exporters="otlp", otlp_endpoint=url, otlp_protocol=protocol,
                              max_queue_size=max_queue_size)
    return batch_processor(otlp_span_exporter(options), options, name=name)


def end_spans(provider: TracerProvider, count: int, name: str = "work") -> None:
    tracer = provider.get_tracer("lmscope.test")
    for _ in range(count):
        tracer.start_span(name).end()


def lmscope_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lmscope" and r.levelno >= logging.WARNING]


def foreign_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.name != "lmscope" and r.levelno >= logging.WARNING]


# --- one warning per exporter, drops counted, secrets masked ------------------------------------------------

BACKENDS = ["refused", "hanging", "500", "grpc-refused"]
REASONS = {"refused": "connection refused", "hanging": "no success within the export timeout",
           "500": "HTTP 500 Internal Server Error", "grpc-refused": "connection refused"}


@pytest.fixture
def backend_url(request, failing_backend, hanging_backend) -> str:
    if request.param == "500":
        return failing_backend.url
    if request.param == "hanging":
        return hanging_backend.url
    from otlp_servers import refused_url

    return refused_url()


@pytest.mark.parametrize("backend_url", BACKENDS, indirect=True)
def test_down_backend_warns_once_per_exporter_and_reports_every_drop(
        request: pytest.FixtureRequest, backend_url: str, failing_backend, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    backend = request.node.callspec.params["backend_url"]
    # The hanging backend times out after 2 s, not 10; refused still gets one retry (after 1 s +-20%).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    protocol = "grpc" if backend.startswith("grpc") else "http/protobuf"
    if protocol == "grpc":
        url, masked = backend_url, backend_url.removeprefix("http://")  # the gRPC exporter keeps host:port
    else:  # credentials in the endpoint must never reach the log
        url = backend_url.replace("http://", "http://lmscope:pa55word@") + "/?token=s3cr3t"
        masked = "http://***@" + backend_url.removeprefix("http://") + "/v1/traces?***"
    first, second = otlp_processor(url, name="otlp", protocol=protocol), otlp_processor(url, name="jaeger",
                                                                                          protocol=protocol)
    provider = TracerProvider()
    provider.add_span_processor(first)
    provider.add_span_processor(second)
    caplog.set_level(logging.DEBUG)

    end_spans(provider, 300)  # below one batch: nothing leaves before the flush
    assert flush_processors([first, second], 10) is False  # delivered nothing
    end_spans(provider, 300)  # later exports fail too, without another warning
    assert first.force_flush(10_000) is False
    begun = time.monotonic()
    shutdown_processors([first, second])
    assert time.monotonic() - begun < 1.5  # a backend known to be down does not hold the exit

    reason = REASONS[backend]
    assert (first.stats().export_failed, first.stats().unsent_at_shutdown) == (600, 0)
    # jaeger's 300 queued spans still get a last attempt at shutdown (the backend might be back). Refused
    # (HTTP and gRPC), the exporter logs and backs off to retry: shutdown stops waiting, ends the retries, and
    # counts that batch as unsent. Hanging, nothing answers within the probe: the batch is on the wire, its
    # outcome unknown (a slow backend may yet store it), and so reported apart from the lost spans.
    failed, unsent = second.stats().export_failed, second.stats().unsent_at_shutdown
    unconfirmed = second.stats().unconfirmed
    if backend == "500":
        # Two flush posts, first's flush, and the last attempt: it was made, and the 500 came back at once,
        # so its spans count as failed; unsent only if shutdown saw the exporter's error log in the instant
        # before its export returned (either way every span is counted once).
        assert failing_backend.posts == 4
        assert (failed, unsent, unconfirmed) in [(600, 0, 0), (300, 300, 0)]
    elif backend == "hanging":
        assert (failed, unsent, unconfirmed) == (300, 0, 300)
    else:
        assert (failed, unsent, unconfirmed) == (300, 300, 0)
    jaeger_causes = f"{failed} export failed" + (f", {unsent} unsent at shutdown" if unsent else "")
    assert sorted(lmscope_warnings(caplog)) == [  # the two flushes run in parallel: either may warn first
        f"lmscope: exporter {name} cannot deliver spans to {masked} ({reason}); the program is unaffected, "
        "spans are dropped while this lasts and counted at exit" for name in ("jaeger", "otlp")]
    jaeger_dropped = failed + unsent
    unknown = (f"; outcome unknown for {unconfirmed} spans sent at shutdown (no answer within the shutdown bound; "
               f"the backend may have stored them); jaeger to {masked}: {unconfirmed}") if unconfirmed else ""
    assert drop_report([first, second]) == (
        f"lmscope: {600 + jaeger_dropped:,} spans were not exported; otlp to {masked}: 600 (600 export failed; "
        f"{reason}); jaeger to {masked}: {jaeger_dropped} ({jaeger_causes}; {reason}){unknown}")
    assert foreign_warnings(caplog) == []  # the OTLP exporters' per-batch/per-retry errors stayed out
    assert "pa55word" not in caplog.text and "s3cr3t" not in caplog.text


def after_one_failed_batch(receiver) -> tuple[BatchExportProcessor, TracerProvider]:
    """A processor exporting to `receiver`, whose first batch (3 spans) the receiver refused with 500; the
    receiver takes exports again, but the processor has not exported since (its exporter is failing)."""
    processor = otlp_processor(receiver.url)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    receiver.status = 500
    end_spans(provider, 3, "while down")
    assert processor.force_flush() is False
    receiver.status = 200
    return processor, provider


def test_a_backend_that_recovers_gets_the_later_spans(receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    processor, provider = after_one_failed_batch(receiver)
    end_spans(provider, 2, "after recovery")
    assert processor.force_flush() is True
    end_spans(provider, 1, "later")
    processor.shutdown()

    assert [span.name for span in receiver.spans()] == ["after recovery", "after recovery", "later"]
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "lmscope"]
    endpoint = f"{receiver.url}/v1/traces"
    assert messages == [
        ("WARNING", f"lmscope: exporter otlp cannot deliver spans to {endpoint} (HTTP 500 Internal Server Error); "
                    "the program is unaffected, spans are dropped while this lasts and counted at exit"),
        ("INFO", f"lmscope: exporter otlp delivers spans to {endpoint} again"),
    ]
    assert processor.stats().dropped == processor.stats().export_failed == 3


def test_shutdown_after_one_failed_batch_delivers_what_is_queued(receiver) -> None:
    """One failed batch (a cold collector) leaves the exporter marked failing until its next export; a
    shutdown before that must still try, and so deliver, everything queued once the backend is back."""
    processor, provider = after_one_failed_batch(receiver)
    end_spans(provider, 300, "after recovery")  # below one batch: all still queued at shutdown
    # The case at hand: no export since the failed one, so the exporter is still known as failing.
    assert processor.exporter.failing and processor.queued == 300
    begun = time.monotonic()
    processor.shutdown()
    elapsed = time.monotonic() - begun

    assert [span.name for span in receiver.spans()] == ["after recovery"] * 300
    stats = processor.stats()
    assert (stats.queue_full, stats.export_failed, stats.unsent_at_shutdown) == (0, 3, 0)
    assert drop_report([processor]) == (f"lmscope: 3 spans were not exported; otlp to {receiver.url}/v1/traces: 3 "
                                        "(3 export failed; HTTP 500 Internal Server Error)")
    assert elapsed < 1.0  # one batch to a local receiver; the shutdown bound was not needed


def test_unrelated_otel_logging_still_reaches_the_app(failing_backend, caplog: pytest.LogCaptureFixture) -> None:
    """Only the exporting thread's records are held back, and only during an export."""
    processor = otlp_processor(failing_backend.url)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    end_spans(provider, 1)
    assert processor.force_flush() is False
    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").warning("app-side warning")
    logging.getLogger("lmscope").warning("lmscope: another lmscope warning")
    processor.shutdown()
    assert foreign_warnings(caplog) == ["opentelemetry.exporter.otlp.proto.http.trace_exporter: app-side warning"]
    assert lmscope_warnings(caplog)[-1] == "lmscope: another lmscope warning"


@pytest.mark.parametrize(("message", "reason"), [
    ("Failed to export spans batch code: 503, reason: Service Unavailable", "HTTP 503 Service Unavailable"),
    ("Transient error StatusCode.UNAVAILABLE encountered while exporting traces to h:4317", "gRPC UNAVAILABLE"),
    ("HTTPSConnectionPool(host='x.io', port=443): Max retries exceeded with url: /v1/traces?key=abc "
     "(Caused by NameResolutionError(\"Failed to resolve 'x.io' ([Errno -2] Name or service not known)\"))",
     "host name not resolved"),
    ("OSError: [Errno 28] No space left on device: 'https://u:p@h/x?tok=1'",
     "OSError: [Errno 28] No space left on device: 'https://***@h/x?***'"),
])
def test_reasons_are_short_and_masked(message: str, reason: str) -> None:
    assert safe_reason(message) == reason


# --- the queue is a hard bound, and shutdown is bounded -----------------------------------------------------

def finished_spans_in_memory(name: str) -> int:
    """ReadableSpans named `name` alive in this process: what the SDK hands to processors when a span ends."""
    gc.collect()
    return sum(type(o) is ReadableSpan and o.name == name for o in gc.get_objects())


@pytest.mark.slow  # waits out the 5 s shutdown bound
def test_queue_never_exceeds_its_cap_while_the_backend_hangs(hanging_backend) -> None:
    """Memory stays bounded: the queue holds at most max_queue_size spans and dropped spans are freed."""
    processor = otlp_processor(hanging_backend.url, max_queue_size=64)  # OTLP timeout: the default 10 s
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("lmscope.test")
    longest = 0
    for _ in range(5_000):
        tracer.start_span("bounded-queue").end()
        longest = max(longest, processor.queued)
    held = finished_spans_in_memory("bounded-queue")
    stats = processor.stats()

    assert longest == 64
    assert held == 64 + 64  # the full queue, and the one batch on the wire to the hanging backend
    assert (stats.queue_full, stats.export_failed) == (5_000 - held, 0)
    begun = time.monotonic()
    processor.shutdown()
    elapsed = time.monotonic() - begun
    # Not known to be down yet (its first export is still on the wire): shutdown waits, but only so long.
    assert SHUTDOWN_TIMEOUT_S - 0.5 < elapsed < SHUTDOWN_TIMEOUT_S + 1.5
    # The queued 64 are unsent; the 64 on the wire to the hanging backend have no outcome yet.
    stats = processor.stats()
    assert (stats.dropped, stats.unsent_at_shutdown, stats.unconfirmed) == (5_000 - 64, 64, 64)


@pytest.mark.slow  # waits out the 5 s shutdown bound
def test_several_hanging_backends_delay_shutdown_once(hanging_backend, tmp_path) -> None:
    """Exporters shut down in parallel under one deadline; a healthy one still delivers everything."""
    hanging = [otlp_processor(hanging_backend.url, name=f"otlp{i}") for i in range(3)]
    file_spans = InMemorySpanExporter()
    healthy = batch_processor(file_spans, resolve_options(exporters="none"), name="memory")
    provider = TracerProvider()
    for processor in (*hanging, healthy):
        provider.add_span_processor(processor)
    end_spans(provider, 600)  # one batch of 512 goes on the wire to each hanging backend
    begun = time.monotonic()
    shutdown_processors([*hanging, healthy])
    assert time.monotonic() - begun < SHUTDOWN_TIMEOUT_S + 1.5
    assert len(file_spans.get_finished_spans()) == 600
    # Per exporter: one batch of 512 on the wire (outcome unknown), the other 88 never sent.
    assert [(p.stats().unsent_at_shutdown, p.stats().unconfirmed) for p in hanging] == [(88, 512)] * 3


# --- the producer yields to a starved worker, never to a blocked one -----------------------------------------

class CpuBoundExporter(SpanExporter):
    """Burns `ms_per_batch` of CPU in Python per batch, as an encoder does."""

    def __init__(self, ms_per_batch: float) -> None:
        self.seconds = ms_per_batch / 1000
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        until = time.thread_time() + self.seconds
        while time.thread_time() < until:
            pass
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class BlockedExporter(SpanExporter):
    """Waits on the network, in effect: blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def test_a_cpu_bound_exporter_slower_than_the_app_loses_no_span() -> None:
    """The app makes spans much faster than the exporter can take them; producers wait for it, nothing drops."""
    exporter = CpuBoundExporter(ms_per_batch=20)
    processor = BatchExportProcessor(exporter, max_queue_size=2048, max_export_batch_size=512)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    end_spans(provider, 20_000)
    assert processor.force_flush() is True
    assert (exporter.spans, processor.stats().dropped) == (20_000, 0)
    processor.shutdown()


def test_a_blocked_exporter_does_not_hold_the_app() -> None:
    """A worker stuck on the network gains nothing from the GIL: producers go on and the excess is dropped."""
    exporter = BlockedExporter()
    processor = BatchExportProcessor(exporter, max_queue_size=2048, max_export_batch_size=512)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    begun = time.monotonic()
    end_spans(provider, 20_000)
    elapsed = time.monotonic() - begun
    free_run = time.monotonic()
    end_spans(TracerProvider(), 20_000)  # the same spans with no processor at all
    free_run = time.monotonic() - free_run
    exporter.release.set()
    processor.shutdown()
    # 20,000 spans take ~0.2 s here. By design the first span to find the worker stuck waits ~0.1 s once (it
    # cannot know sooner that the export is stuck, not slow); a wait per span, even of a millisecond, would be
    # 20 s. The margin covers a loaded 2-core machine without hiding that.
    assert elapsed < free_run * 2 + 1.0
    assert processor.stats().queue_full == 20_000 - 2048 - 512


def test_a_guarded_exporter_never_raises() -> None:
    class Broken(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise RuntimeError("encoder bug")

    guard = GuardedExporter(Broken(), "broken")
    assert guard.export([]) is SpanExportResult.FAILURE
    assert (guard.failing, guard.last_error) == (True, "RuntimeError: encoder bug")


def test_exports_run_with_instrumentation_suppressed() -> None:
    """An instrumented HTTP client (requests, urllib3) must not trace the exporter's own requests."""
    from opentelemetry import context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    seen: list[object] = []

    class Probe(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            seen.append(context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            return SpanExportResult.SUCCESS

    processor = BatchExportProcessor(Probe())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    end_spans(provider, 1)
    assert processor.force_flush() is True
    processor.shutdown()
    assert seen == [True]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_exports_through_its_own_worker() -> None:
    exporter = InMemorySpanExporter()
    processor = BatchExportProcessor(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    end_spans(provider, 1, "parent")
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker thread did not survive the fork
        end_spans(provider, 1, "child")
        ok = processor.force_flush(5_000) and [s.name for s in exporter.get_finished_spans()] == ["child"]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert processor.force_flush() is True
    assert [s.name for s in exporter.get_finished_spans()] == ["parent"]
    processor.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_reports_only_its_own_drops(failing_backend) -> None:
    """The parent reports its drops at its own exit; the child's exit report must not repeat them."""
    processor = otlp_processor(failing_backend.url)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    end_spans(provider, 4, "parent")
    assert processor.force_flush() is False
    assert processor.stats().export_failed == 4
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: two spans of its own, failed too; it reports its counts through the pipe
        code = 1
        try:
            os.close(read_end)
            end_spans(provider, 2, "child")
            flushed = processor.force_flush(5_000)
            processor.shutdown()
            stats = processor.stats()
            report = {"flushed": flushed, "counts": [stats.queue_full, stats.export_failed, stats.unsent_at_shutdown],
                      "report": drop_report([processor])}
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)  # never back into pytest in the child
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = json.loads(received)

    assert child["flushed"] is False
    assert child["counts"] == [0, 2, 0]
    assert child["report"] == (f"lmscope: 2 spans were not exported; otlp to {failing_backend.url}/v1/traces: 2 "
                               "(2 export failed; HTTP 500 Internal Server Error)")
    assert failing_backend.posts == 2  # the parent's flush and the child's: the child exported its own span
    assert processor.stats().export_failed == 4  # the parent's counts are its own, untouched by the child
    processor.shutdown()
