"""Spans leave the app on a worker thread, through a hard-bounded queue, and never hold the program up.

`BatchExportProcessor` does what the SDK's BatchSpanProcessor does, plus what lmscope promises about a
down, slow or failing backend:

- The queue holds at most `max_queue_size` spans: while a backend is down memory stays bounded, and a
  span that finds the queue full is dropped and counted (never an SDK log line per span).
- Flushing runs on the worker; callers only wait, up to their timeout. So a flush or shutdown with a
  hanging backend returns in time, and several exporters flush in parallel (`flush_processors`).
- Shutdown always makes a last attempt at what is queued, even when an earlier batch failed (one blip at
  a cold collector must not cost every later span). It waits at most `SHUTDOWN_TIMEOUT_S` (a hanging
  backend), and stops waiting as soon as the backend fails again during shutdown: the exporter would only
  back off and retry until its own timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s). A backend that was failing
  when shutdown began has `RECOVERY_PROBE_S` to take a batch, so a backend known to hang does not hold
  the exit either. Then the exporter is shut down, which ends its retries, and what could not be sent is
  counted; `drop_report` turns all counts into one line.
- A batch still on the wire when shutdown stops waiting (a cold MLflow server's first request can take longer than
  the shutdown bound, and still store every span) is neither delivered nor lost: its outcome is unknown, and the
  exit line says so apart from what was not exported. If its answer arrives before the counts are read, it is
  reconciled: a success counts as delivered, a failure as unsent at shutdown.
- No spans lost under load with a healthy backend. In a tight CPython loop (DSPy on cache hits or a
  dummy LM) a woken worker thread can wait hundreds of milliseconds for the GIL, because the app thread
  keeps re-taking it (benchmarks/README.md). So when `YIELD_AT_BATCHES` batches are queued, the span's
  producer blocks until the worker has taken a batch off the queue, which hands the GIL over at once.
  It waits only while export workers compute (their thread CPU clocks move): a worker blocked on the
  network (a slow or hanging backend) gains nothing from the GIL, so the producer goes on after one
  `YIELD_SLICE_S`. Nobody waits while the exporter is failing or retrying, and wait time in which the
  worker did not compute is capped by a budget refilling at `YIELD_BUDGET_SHARE` of wall time.
  Many producers (64 threads of `Module.batch`) can still overrun the queue past that yield; so a producer that
  finds it full waits for the worker's next batch while the exporter is healthy (`_wait_for_room`): at most
  `FULL_MAX_WAIT_S` per span, never while it fails or retries, and not for an export that is stuck (it has
  run 4x longer than recent ones, at least `FULL_STALL_S`, with its worker computing nothing meanwhile).
- Fork and signals: a forked child starts its worker afresh (lmscope/telemetry/_fork.py); the worker's wake-up
  and progress notice never block, so lmscope's SIGTERM flush (lmscope/_signals.py) cannot deadlock on them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from ._attributes_on_export import with_attributes
from ._export_guard import GuardedExporter
from ._fork import renew_after_fork
from ._options import DEFAULT_MAX_QUEUE_SIZE
from ._recorded_span import RecordedSpan
from ._thread_signals import block_process_signals

SHUTDOWN_TIMEOUT_S = 5.0
"""The longest a shutdown (and so the app's exit) waits for queued spans; a setup's exporters share it."""
RECOVERY_PROBE_S = 0.5
"""How long shutdown waits for a backend whose last export failed to take a batch before giving up on it:
long enough for one batch to a collector that is back, short enough that one that still hangs (and only
answers at the exporter's timeout) barely delays the exit. Once a batch gets through, the usual bound holds."""
YIELD_AT_BATCHES = 2
"""Queued batches from which a producer hands the GIL to the worker: it is a batch behind."""
YIELD_MAX_WAIT_S = 0.25
"""The longest a producer waits for a computing worker: longer than a healthy export of one batch takes."""
YIELD_SLICE_S = 0.0005
"""A producer goes on when the worker used less than a tenth of such a slice in CPU (it waits on the network)."""
YIELD_BUDGET_SHARE = 0.02
"""Producers lose at most this share of wall time waiting for a worker that does not compute (plus the burst)."""
YIELD_BUDGET_BURST_S = 0.01
FULL_SLICE_S = 0.05
"""With the queue full, how often a waiting producer looks at the worker (the worker also wakes it per batch):
not much more often, or 64 waiters polling take the GIL from the worker they wait for."""
FULL_STALL_S = 0.25
"""The least an export may run (its worker not computing) before producers stop waiting for it. Not less: 64
producer threads can keep a computing worker off the GIL for a tenth of a second, which looked like a stuck export
and cost a healthy exporter 2,444 of 32,000 spans in one CI run."""
FULL_COMPUTING_S = FULL_SLICE_S / 100
"""CPU time the export workers must use in one slice to count as computing (a worker waiting on the network
uses none); a starved worker that gets the GIL for a moment still counts."""
FULL_MAX_WAIT_S = 2.0
"""The longest one span's producer waits for room (all rounds), however healthy the exporter looks."""


@dataclass(frozen=True)
class ExportStats:
    """Spans one exporter did not deliver, by cause."""

    name: str
    destination: str
    queue_full: int
    export_failed: int
    unsent_at_shutdown: int
    last_error: str | None = None
    unconfirmed: int = 0
    """Spans of a batch sent before shutdown gave up waiting and not answered yet: maybe stored, maybe not.
    Not in `dropped`."""

    @property
    def dropped(self) -> int:
        return self.queue_full + self.export_failed + self.unsent_at_shutdown


class FlushRequest:
    """A flush the worker answers: `wait` is True when everything queued at the request was delivered."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._delivered = False

    def answer(self, delivered: bool) -> None:
        self._delivered = delivered
        self._done.set()

    @property
    def answered(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(max(0.0, timeout_s)) and self._delivered


class _YieldBudget:
    """Seconds producers may still spend waiting for the worker; refills at a share of wall time."""

    def __init__(self) -> None:
        self._left = YIELD_BUDGET_BURST_S
        self._at = time.monotonic()

    def available(self) -> float:
        now = time.monotonic()
        self._left = min(YIELD_BUDGET_BURST_S, self._left + (now - self._at) * YIELD_BUDGET_SHARE)
        self._at = now
        return self._left

    def spend(self, seconds: float) -> None:
        self._left -= seconds


# CPU clocks of every live export worker thread (all exporters): a producer that waits for its worker
# also lets the others run, and their computing is not time lost either.
_WORKER_CLOCKS: set[int] = set()
_HAS_THREAD_CLOCKS = hasattr(time, "pthread_getcpuclockid")  # not on macOS and Windows
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER_CLOCKS.clear)  # the parent's workers do not exist there


def _register_worker_clock() -> int:
    if not _HAS_THREAD_CLOCKS:
        return -1
    clock = time.pthread_getcpuclockid(threading.get_ident())
    _WORKER_CLOCKS.add(clock)
    return clock


def _export_workers_cpu() -> float | None:
    """CPU seconds the live export workers have used; None where the platform cannot tell."""
    if not _HAS_THREAD_CLOCKS:
        return None
    total = 0.0
    for clock in list(_WORKER_CLOCKS):
        with contextlib.suppress(OSError):  # the thread ended between the copy and the read
            total += time.clock_gettime(clock)
    return total


class BatchExportProcessor(SpanProcessor):
    """Queues ended spans (at most `max_queue_size`) and exports them in batches on a worker thread, where the
    attributes left for export are stored (`_attributes_on_export.py`)."""

    builds_attributes_on_export = True
    reads_span_start = False
    """Its `on_start` does nothing: a group of lmscope's skips calling it (`_span_switch.ProcessorGroup.starting`)."""

    def __init__(self, exporter: SpanExporter, *, max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
                 max_export_batch_size: int = 512, schedule_delay_millis: float = 5000,
                 name: str | None = None) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1 or schedule_delay_millis <= 0:
            raise ValueError("max_queue_size, max_export_batch_size and schedule_delay_millis must be positive")
        self.exporter = exporter if isinstance(exporter, GuardedExporter) else GuardedExporter(exporter, name)
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self._delay_s = schedule_delay_millis / 1000
        self._yield_at = min(YIELD_AT_BATCHES * self.max_export_batch_size, max_queue_size)
        self._closing = False
        self._abandoned = False
        # Set by begin_shutdown: exports numbered above this one are the last attempt (see `gave_up`).
        self._last_attempt_after = 0
        self._probe_until: float | None = None
        self._start()
        self._start_worker()
        renew_after_fork(self)

    def _start(self) -> None:
        # Drop counts start here, not in __init__: a forked child (after_fork_in_child) reports only the spans it
        # dropped, not its parent's again (the parent reports those at its own exit).
        self._queue_full = 0
        self._export_failed = 0
        self._unsent = 0
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        # A SimpleQueue, not an Event: its put() takes no Python-level lock, so a signal handler (lmscope's flush
        # on SIGTERM) can wake the worker even when it interrupted the main thread inside on_end.
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._woken = False
        self._progress = threading.Condition(threading.Lock())
        self._batches_taken = 0
        self._budget = _YieldBudget()
        self._flush_requests: list[FlushRequest] = []
        self._in_flight = 0
        self._unconfirmed = 0
        """Spans of the batch that was on the wire when shutdown gave up waiting, until its outcome arrives."""
        self._worker: threading.Thread | None = None
        self._export_started: float | None = None
        self._export_seconds: deque[float] = deque(maxlen=8)
        """Wall time of the latest successful exports: what a healthy export takes here, under this load."""
        self._stalled_at = -1
        """`_batches_taken` when a producer last gave up on a stuck export: nobody waits again until it moves."""
        self._waiters = 0
        """Producers waiting for room in the full queue."""

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name="lmscope-export", daemon=True)
        self._worker.start()

    def after_fork_in_child(self) -> None:
        """A forked child has no worker thread and may have inherited our locks held: it starts afresh, with an
        empty queue and its own counts, and its worker starts with its first span or flush (`_ensure_worker`)."""
        self._start()
        if self._closing:  # forked after shutdown: nothing is exported in the child either
            self._abandoned = True

    def _ensure_worker(self) -> None:
        # Called with self._lock held, so two threads of a forked child do not both start one.
        if self._worker is None and not self._abandoned:
            self._start_worker()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        """True once shutdown has begun: new spans are counted as unsent, not queued."""
        return self._closing

    # --- the app's threads ----------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # A recorded span (lmscope's processors read it as a span) has its flags as they are: its SpanContext is made
        # on export (`_recorded_span.py`).
        recorded = type(span) is RecordedSpan  # type: ignore[comparison-overlap]
        # The sampled bit read as an int (the flags' `sampled` is a property: a call on every span).
        if not (span.trace_flags if recorded else span.context.trace_flags) & TraceFlags.SAMPLED:  # type: ignore[attr-defined]
            return
        with self._lock:
            if self._closing:
                self._unsent += 1
                return
            # The last `_waiters` places are kept for the producers waiting for room: a woken waiter finds its
            # place, not one a running producer took first (else a waiter could lose the race round after round).
            if len(self._queue) < self.max_queue_size - self._waiters:
                self._queue.append(span)
                queued = len(self._queue)
                if self._worker is None:
                    self._ensure_worker()
            else:
                queued = -1
                self._waiters += 1
        if queued < 0:
            queued = self._append_when_room(span)
            if queued < 0:
                return
        if queued >= self.max_export_batch_size:
            if not self._woken:
                self._wake_worker()
            if queued >= self._yield_at:
                self._yield_to_worker()

    def _append_when_room(self, span: ReadableSpan) -> int:
        """Queue `span` once there is room (see `_wait_for_room`); its queue length then, or -1 if it was dropped."""
        since = time.monotonic()
        while True:
            # A waiter tries only after the worker took a batch, never at once: the places kept free are for
            # those who were waiting before it.
            waited = self._wait_for_room(since)
            with self._lock:
                if self._closing or len(self._queue) < self.max_queue_size or not waited:
                    self._waiters -= 1
                    if self._closing:
                        self._unsent += 1
                        return -1
                    if not waited:
                        self._queue_full += 1
                        return -1
                    self._queue.append(span)
                    return len(self._queue)

    def _wait_for_room(self, since: float) -> bool:
        """The queue is full: wait while a healthy exporter works it off; False when waiting cannot help.

        A healthy exporter (its exports succeed, the current one is not stuck) always makes room, so the span's
        producer waits for the next batch instead of losing the span: with 64 producer threads the yield above
        is not enough (they overran the queue of a healthy file exporter). It does not wait while the exporter
        is failing or retrying, and not for an export that has run far longer than the recent ones did while its
        worker computed nothing for as long (a hanging backend): that costs one producer `_stall_after()` (at
        least FULL_STALL_S), once per stuck export; later spans are dropped at once until the worker takes a
        batch again.
        """
        if self.exporter.troubled or threading.current_thread() is self._worker:
            return False
        taken = self._batches_taken
        if taken == self._stalled_at:
            return False
        idle_since = time.monotonic()  # the worker's CPU clock has not moved since
        while True:
            cpu_before = _export_workers_cpu()
            with self._progress:
                if self._progress.wait_for(lambda: self._batches_taken != taken, FULL_SLICE_S):
                    return True
            cpu_after = _export_workers_cpu()
            now = time.monotonic()
            if self.exporter.troubled or self._closing or now - since >= FULL_MAX_WAIT_S:
                return False
            if cpu_before is not None and cpu_after is not None and cpu_after - cpu_before >= FULL_COMPUTING_S:
                idle_since = now  # it computes (an encoder): slow, not stuck
            started, limit = self._export_started, self._stall_after()
            if started is not None and now - started > limit and now - idle_since > limit:
                self._stalled_at = taken
                return False

    def _stall_after(self) -> float:
        """How long an export may run before a full queue stops waiting for it: 4x the slowest recent one."""
        return max(FULL_STALL_S, 4 * max(self._export_seconds, default=0.0))

    def _yield_to_worker(self) -> None:
        if self.exporter.troubled or threading.current_thread() is self._worker or self._budget.available() <= 0:
            return
        taken = self._batches_taken
        deadline = time.monotonic() + YIELD_MAX_WAIT_S
        lost = 0.0
        while True:
            cpu_before, began = _export_workers_cpu(), time.monotonic()
            with self._progress:
                moved = self._progress.wait_for(lambda: self._batches_taken != taken, YIELD_SLICE_S)
            now = time.monotonic()
            cpu_after = _export_workers_cpu()
            # A slice in which export workers computed gave them their fair share of the GIL (a CPU-bound
            # exporter such as the file encoder has to get it somehow); a slice in which none did was lost.
            computing = cpu_before is None or cpu_after is None or cpu_after - cpu_before >= YIELD_SLICE_S * 0.1
            if cpu_before is None or cpu_after is None or not computing:  # cannot tell, or waited for nothing
                lost += now - began
            if moved or not computing or now >= deadline:
                break
        self._budget.spend(lost)

    def _wake_worker(self) -> None:
        self._woken = True
        self._wake.put(None)

    def request_flush(self) -> FlushRequest:
        """Ask the worker to export everything queued now; answered when it has (or has given up)."""
        request = FlushRequest()
        with self._lock:
            if self._abandoned:
                request.answer(False)
                return request
            self._flush_requests.append(request)
            self._ensure_worker()
        self._wake_worker()
        return request

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """True when everything queued was delivered in time; False after shutdown, on timeout or failure."""
        if self._closing:
            return False
        return self.request_flush().wait(timeout_millis / 1000)

    def begin_shutdown(self) -> FlushRequest | None:
        """Stop accepting spans and ask for a last flush; None when shutdown has already begun.

        The last flush is asked for even when the backend failed before: only an attempt made now tells
        whether it is back. `gave_up` says when waiting for it is pointless.
        """
        with self._lock:
            if self._closing:
                return None
            self._closing = True
        self._last_attempt_after = self.exporter.attempts
        if self.exporter.failing:
            self._probe_until = time.monotonic() + RECOVERY_PROBE_S
        return self.request_flush()

    def gave_up(self, now: float) -> bool:
        """During shutdown: True when the last flush cannot deliver in time, so the exit need not wait for it."""
        exporter = self.exporter
        if exporter.failed_since(self._last_attempt_after):
            return True  # an attempt made during shutdown failed: the backend is down now, not just earlier
        if exporter.retrying:
            # The export under way (from before shutdown) failed and backs off: the last attempt could only
            # start after its retries, which end at the exporter's timeout (10 s), past the shutdown bound.
            return True
        # A backend that was failing at shutdown has to take a batch within the probe; if it does, it is
        # back and the shutdown bound applies, else it is still down or hanging.
        return (self._probe_until is not None and now >= self._probe_until
                and not exporter.succeeded_since(self._last_attempt_after))

    def finish_shutdown(self, timeout_s: float = 1.0) -> None:
        """Give up on what is still queued (counted as unsent) or in flight (unconfirmed until its answer comes),
        and shut the exporter down."""
        with self._lock:
            self._abandoned = True
            self._unsent += len(self._queue)
            self._queue.clear()
            requests, self._flush_requests = self._flush_requests, []
        for request in requests:
            request.answer(False)
        self._wake_worker()
        # Aborts the OTLP exporters' retry back-off; a request already on the wire ends with its own timeout.
        self.exporter.shutdown(timeout_millis=int(timeout_s * 1000))
        worker = self._worker
        # An export backing off between retries returns at once now; one on the wire (a hanging or slow backend)
        # ends with its own timeout: joining would only wait, and what it sent is counted as unconfirmed below.
        if worker is not None and (not self._in_flight or self.exporter.retrying):
            worker.join(timeout_s)
        with self._lock:
            # A batch still on the wire (a hanging or a slow backend) may yet be stored: its outcome is unknown
            # until the worker sees the answer (`_export` reconciles it then).
            self._unconfirmed += self._in_flight
            self._in_flight = 0

    def shutdown(self) -> None:
        shutdown_processors([self])

    def stats(self) -> ExportStats:
        with self._lock:
            return ExportStats(self.exporter.name, self.exporter.destination, self._queue_full,
                               self._export_failed, self._unsent, self.exporter.last_error, self._unconfirmed)

    # --- the worker thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        block_process_signals()
        clock = _register_worker_clock()
        try:
            self._work_until_abandoned()
        finally:
            _WORKER_CLOCKS.discard(clock)

    def _work_until_abandoned(self) -> None:
        while not self._abandoned:
            try:
                self._wake.get(timeout=self._delay_s)
                woken = True
            except queue.Empty:
                woken = False
            self._woken = False  # before draining: a wake-up from now on leaves a token for the next round
            with contextlib.suppress(queue.Empty):
                while True:
                    self._wake.get_nowait()
            with self._lock:
                requests, self._flush_requests = self._flush_requests, []
                # A flush exports what was queued when the worker took the request, not spans that keep coming.
                everything = bool(requests) or not woken
                target = len(self._queue) if everything else 0
            delivered = self._export(target)
            for request in requests:
                request.answer(delivered)

    def _export(self, at_least: int) -> bool:
        """Export full batches while there are any, and at least `at_least` spans; False if any failed."""
        exported, delivered = 0, True
        while not self._abandoned:
            with self._lock:
                queued = len(self._queue)
                if queued == 0 or (queued < self.max_export_batch_size and exported >= at_least):
                    return delivered
                batch = [self._queue.popleft() for _ in range(min(queued, self.max_export_batch_size))]
                self._in_flight = len(batch)
            self._batches_taken += 1
            # Never waits: a producer interrupted by a signal handler while it held this lock (inside wait_for)
            # must not stop the worker the handler's flush waits for. A producer that misses a notification
            # sees the count at the end of its wait slice.
            if self._progress.acquire(blocking=False):
                try:
                    self._progress.notify_all()
                finally:
                    self._progress.release()
            # As the SDK's BatchSpanProcessor does: an instrumented HTTP client must not trace our own export.
            self._export_started = started = time.monotonic()
            with suppress_instrumentation():
                result = self.exporter.export([with_attributes(span) for span in batch])
            self._export_started = None
            if result is SpanExportResult.SUCCESS:
                self._export_seconds.append(time.monotonic() - started)
            with self._lock:
                if self._in_flight:
                    self._in_flight = 0
                    if result is not SpanExportResult.SUCCESS:
                        if self._abandoned:  # shutdown gave up on it and its exporter's shutdown ended its retries
                            self._unsent += len(batch)
                        else:
                            self._export_failed += len(batch)
                else:  # shutdown stopped waiting for this batch and counted it as unconfirmed: now it is known
                    self._unconfirmed -= len(batch)
                    if result is not SpanExportResult.SUCCESS:
                        self._unsent += len(batch)
            delivered = delivered and result is SpanExportResult.SUCCESS
            exported += len(batch)
        return False


def flush_processors(processors: Sequence[SpanProcessor], timeout_s: float) -> bool:
    """Flush all at once (batch processors in parallel on their workers); True if all delivered in time."""
    deadline = time.monotonic() + timeout_s
    requests = []
    delivered = True
    for processor in processors:
        if isinstance(processor, BatchExportProcessor):
            if processor.closing:
                delivered = False
            else:
                requests.append(processor.request_flush())
        else:
            delivered = processor.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000)) and delivered
    for request in requests:
        delivered = request.wait(deadline - time.monotonic()) and delivered
    return delivered


def shutdown_processors(processors: Sequence[SpanProcessor], timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Shut all down with one shared deadline, so N hanging backends delay exit once, not N times."""
    deadline = time.monotonic() + timeout_s
    last_flushes = [(p, p.begin_shutdown()) for p in processors if isinstance(p, BatchExportProcessor)]
    for processor in processors:
        if not isinstance(processor, BatchExportProcessor):  # synchronous ones (console trees)
            processor.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000))
            processor.shutdown()
    # Wait for the last flushes, but not for an exporter whose backend fails them (`gave_up`): it would
    # only back off and retry until the deadline (a refused connection at exit).
    waiting = [(p, r) for p, r in last_flushes if r is not None]
    while waiting and time.monotonic() < deadline:
        now = time.monotonic()
        waiting = [(p, r) for p, r in waiting if not r.answered and not p.gave_up(now)]
        if waiting:
            waiting[0][1].wait(min(0.02, deadline - time.monotonic()))
    for processor, request in last_flushes:
        if request is not None:
            processor.finish_shutdown(timeout_s=min(1.0, max(0.0, deadline - time.monotonic())))


def drop_report(processors: Sequence[SpanProcessor]) -> str | None:
    """One line naming every exporter that dropped spans and why, then those whose last batch got no answer before
    the shutdown bound (outcome unknown: the backend may have stored it); None when neither happened."""
    parts = []
    unknown = []
    total = unconfirmed = 0
    for processor in processors:
        if not isinstance(processor, BatchExportProcessor):
            continue
        stats = processor.stats()
        if stats.unconfirmed:
            unconfirmed += stats.unconfirmed
            unknown.append(f"{stats.name} to {stats.destination}: {stats.unconfirmed:,}")
        if not stats.dropped:
            continue
        total += stats.dropped
        causes = [f"{count:,} {cause}" for count, cause in ((stats.queue_full, "queue full"),
                                                             (stats.export_failed, "export failed"),
                                                             (stats.unsent_at_shutdown, "unsent at shutdown"))
                  if count]
        why = f"; {stats.last_error}" if stats.last_error else ""
        parts.append(f"{stats.name} to {stats.destination}: {stats.dropped:,} ({', '.join(causes)}{why})")
    lines = []
    if parts:
        lines.append(f"{total:,} spans were not exported; " + "; ".join(parts))
    if unknown:
        lines.append(f"outcome unknown for {unconfirmed:,} spans sent at shutdown (no answer within the shutdown "
                     "bound; the backend may have stored them); " + "; ".join(unknown))
    return "lmscope: " + "; ".join(lines) if lines else None
