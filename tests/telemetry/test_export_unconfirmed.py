"""A batch on the wire when shutdown stops waiting is not lost until its answer says so (issue 12).

The report came from a cold MLflow server: its first OTLP request took longer than the shutdown bound, lmscope
counted the 43 spans on the wire as "not exported", and the server stored all 43. These tests reproduce that with
a local `SlowReceiver` (tests/otlp_servers.py), not a real MLflow server (slow to start, and its cold-start time
is not under the test's control): it stores the request at once and answers only when the test releases it, so the
batch is deterministically on the wire when the (short) shutdown bound ends. The exporter is lmscope's OTLP/HTTP
one, as the mlflow preset's is.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace import TracerProvider

from lmscope.telemetry._batch_export import BatchExportProcessor, drop_report, shutdown_processors
from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._pipeline import batch_processor

pytestmark = pytest.mark.usefixtures("clean_env")

UNKNOWN = ("outcome unknown for {n} spans sent at shutdown (no answer within the shutdown bound; the backend may "
           "have stored them); otlp to {url}/v1/traces: {n}")


def otlp_processor(url: str) -> BatchExportProcessor:
    options = resolve_options(exporters="otlp", otlp_endpoint=url)
    return batch_processor(otlp_span_exporter(options), options, name="otlp")


def shut_down_while_on_the_wire(server, spans: int = 43) -> BatchExportProcessor:
    processor = otlp_processor(server.url)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("lmscope.test")
    for _ in range(spans):
        tracer.start_span("work").end()
    processor.request_flush()  # the first export goes on the wire
    assert server.stored.wait(10)
    begun = time.monotonic()
    shutdown_processors([processor], timeout_s=0.3)  # the shutdown bound ends before the server answers
    assert time.monotonic() - begun < 1.5
    return processor


def wait_for_outcome(processor: BatchExportProcessor) -> None:
    deadline = time.monotonic() + 10
    while processor.stats().unconfirmed and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_batch_answered_after_the_shutdown_bound_is_not_reported_lost() -> None:
    from otlp_servers import SlowReceiver

    with SlowReceiver() as server:
        processor = shut_down_while_on_the_wire(server)
        stats = processor.stats()
        assert (stats.dropped, stats.unsent_at_shutdown, stats.unconfirmed) == (0, 0, 43)  # was: 43 unsent
        assert drop_report([processor]) == "lmscope: " + UNKNOWN.format(n=43, url=server.url)
        assert len(server.spans()) == 43  # stored already

        server.release.set()  # the cold server answers at last, before the process exits
        wait_for_outcome(processor)
        stats = processor.stats()
        assert (stats.dropped, stats.unconfirmed) == (0, 0)
        assert drop_report([processor]) is None
        assert len(server.spans()) == 43


def test_a_batch_refused_after_the_shutdown_bound_counts_as_unsent() -> None:
    from otlp_servers import SlowReceiver

    with SlowReceiver() as server:
        server.status = 400  # not stored; answered (non-retryable) only when released
        processor = shut_down_while_on_the_wire(server)
        assert (processor.stats().dropped, processor.stats().unconfirmed) == (0, 43)
        server.release.set()
        wait_for_outcome(processor)
        stats = processor.stats()
        assert (stats.export_failed, stats.unsent_at_shutdown, stats.unconfirmed) == (0, 43, 0)
        assert drop_report([processor]) == (f"lmscope: 43 spans were not exported; otlp to {server.url}/v1/traces: 43 "
                                            f"(43 unsent at shutdown; {stats.last_error})")
        assert server.spans() == []


def test_the_exit_line_tells_lost_spans_from_unconfirmed_ones(failing_backend) -> None:
    from otlp_servers import SlowReceiver

    failing = otlp_processor(failing_backend.url)
    provider = TracerProvider()
    provider.add_span_processor(failing)
    for _ in range(3):
        provider.get_tracer("lmscope.test").start_span("work").end()
    assert failing.force_flush(10_000) is False
    with SlowReceiver() as server:
        slow = shut_down_while_on_the_wire(server, spans=7)
        shutdown_processors([failing], timeout_s=0.3)
        assert drop_report([failing, slow]) == (
            f"lmscope: 3 spans were not exported; otlp to {failing_backend.url}/v1/traces: 3 (3 export failed; HTTP "
            "500 Internal Server Error); " + UNKNOWN.format(n=7, url=server.url))
