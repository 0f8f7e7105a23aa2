"""An exporter as the app sees it: one warning when its backend fails, one note when it recovers.

`GuardedExporter` wraps every exporter behind lmscope's batch processor. It never raises, knows whether
the backend took the last batch (after the exporter's own retries), and keeps the exporter's own error
logs out of the app's log: while it exports, the records of the exporter's loggers on that worker thread
are held back (the OTLP exporters log once per batch and per retry, and their messages, like urllib3's
debug lines, can carry the endpoint's query string). The first WARNING+ message becomes the reason in
lmscope's single warning. OTel logging on other threads, or outside an export, is untouched.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._fork import renew_after_fork
from ._scrub import scrub_credentials
from ._url_masking import mask_url, mask_urls_in

logger = logging.getLogger("lmscope")

# A backend that flaps between up and down warns again at most this often.
REWARN_AFTER_S = 300.0

# Loggers an exporter may log through besides those of its own class hierarchy's modules (which miss the
# OTLP exporter inside a wrapper): the OTLP exporters', urllib3's pool (it warns on discarded
# connections) and lmscope's own (the file exporter).
_KNOWN_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "urllib3.connectionpool", "lmscope",
)

_capture = threading.local()


class _Capture:
    def __init__(self, guard: GuardedExporter) -> None:
        self.records: list[logging.LogRecord] = []
        self.guard = guard


class _CaptureDuringExport(logging.Filter):
    """Holds back the records the exporting thread emits while a guarded export runs (all levels: urllib3's
    DEBUG lines print the request URL, query string included); keeps WARNING+ ones for the reason, and
    flags trouble at once (the exporter logs a failed attempt before it backs off and retries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        capture: _Capture | None = getattr(_capture, "current", None)
        if capture is None:
            return True
        if record.levelno >= logging.WARNING:
            capture.records.append(record)
            if len(capture.records) == 1:
                capture.guard._note_trouble(record.getMessage())
        return False


_FILTER = _CaptureDuringExport()


@contextmanager
def _captured_logs(guard: GuardedExporter) -> Iterator[list[logging.LogRecord]]:
    capture = _Capture(guard)
    _capture.current = capture
    try:
        yield capture.records
    finally:
        _capture.current = None


def _quiet_loggers(exporter: SpanExporter) -> set[str]:
    own = {cls.__module__ for cls in type(exporter).__mro__ if cls.__module__ not in ("builtins", "abc")}
    return own | set(_KNOWN_EXPORT_LOGGERS)


# Short reasons for the failures people meet; anything else is the exporter's message, masked.
_REASONS = (
    (re.compile(r"connection refused|ECONNREFUSED", re.IGNORECASE), "connection refused"),
    (re.compile(r"name or service not known|nodename nor servname|getaddrinfo failed", re.IGNORECASE),
     "host name not resolved"),
    # The OTLP/HTTP exporter's last word when its retries and OTEL_EXPORTER_OTLP_TIMEOUT ran out.
    (re.compile(r"due to timeout, max retries or shutdown"), "no success within the export timeout"),
    (re.compile(r"timed? ?out|timeout|DEADLINE_EXCEEDED", re.IGNORECASE), "no answer in time"),
    (re.compile(r"StatusCode\.([A-Z_]+)"), r"gRPC \1"),
    (re.compile(r"code: (\d{3}), reason: ([^,]*)"), r"HTTP \1 \2"),
)
_QUERY = re.compile(r"[?#][^\s'\"()<>]*")
_SCANNED_CHARS = 65_536
"""How much of a message is searched for a known reason: a backend's error page can be megabytes."""


def safe_reason(message: str, limit: int = 160) -> str:
    """A one-line reason for a failed export, with URL userinfo, query strings and fragments masked and
    credentials redacted.

    Linear in the message (every pattern here matches forward from one position), and only its head is read."""
    head = scrub_credentials(message[:_SCANNED_CHARS])  # URLs are masked below
    for pattern, reason in _REASONS:
        found = pattern.search(head)
        if found:
            return " ".join(mask_urls_in(found.expand(reason)[: limit * 8]).split())[:limit]
    # Only the first `limit` characters are shown: mask a head with room for the whitespace that `split` drops.
    masked = _QUERY.sub("?***", mask_urls_in(head[: limit * 8]))
    masked = " ".join(masked.split())
    return masked if len(masked) <= limit else masked[: limit - 3] + "..."


def describe_destination(exporter: SpanExporter) -> str:
    """Where an exporter sends spans (endpoint with secrets masked, or file path), for log lines."""
    for attribute in ("_endpoint", "endpoint"):
        value = getattr(exporter, attribute, None)
        if isinstance(value, str) and value:
            return mask_url(value)
    path = getattr(exporter, "_path", None)
    return str(path) if path is not None else type(exporter).__name__


def _takes_timeout(shutdown: object) -> bool:
    """Whether an exporter's shutdown accepts `timeout_millis` (the gRPC exporter's does), as the SDK checks."""
    try:
        return "timeout_millis" in inspect.signature(shutdown).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


class GuardedExporter(SpanExporter):
    """Wraps `inner`: never raises, knows whether the backend is failing, warns once per outage (not per batch)."""

    def __init__(self, inner: SpanExporter, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or type(inner).__name__
        self.destination = describe_destination(inner)
        self.last_error: str | None = None
        """Why the latest failed export failed, or the export under way ran into trouble (kept after recovery)."""
        self._failing = False
        self._trouble = threading.Event()
        # Exports are numbered from 1 as they start; shutdown compares these with the number at its start,
        # so a failure from before shutdown (a blip long fixed) is told apart from one it just ran into.
        self._attempts = 0
        self._exporting = False
        self._failed_at = 0
        """The number of the latest export that ran into trouble (logged an error or failed); 0: none."""
        self._succeeded_at = 0
        self._closed = False
        self._warned_at: float | None = None
        self._warned_this_outage = False
        self._shutdown_takes_timeout = _takes_timeout(inner.shutdown)
        renew_after_fork(self)
        for name_ in _quiet_loggers(inner):
            export_logger = logging.getLogger(name_)
            # First in line: the gRPC exporter's logger has the SDK's DuplicateFilter, which drops a record
            # equal to the one before (same message template within 20 s). Behind it, the second of two
            # exporters retrying against the same down backend would never be seen to be in trouble.
            if _FILTER not in export_logger.filters:
                export_logger.filters.insert(0, _FILTER)

    def after_fork_in_child(self) -> None:
        self._trouble = threading.Event()  # its lock may have been held by the parent's export worker
        self._exporting = False

    @property
    def failing(self) -> bool:
        """True while the last export failed: the backend is down, slow beyond its timeout, or refusing."""
        return self._failing

    @property
    def troubled(self) -> bool:
        """True while failing, and as soon as the export under way logged an error (it may be retrying)."""
        return self._failing or self._trouble.is_set()

    @property
    def attempts(self) -> int:
        """How many exports have started (the one under way included)."""
        return self._attempts

    @property
    def retrying(self) -> bool:
        """True while the export under way has run into trouble and not returned: the OTLP exporters back
        off and retry then, until their own timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s)."""
        return self._exporting and self._failed_at == self._attempts

    def failed_since(self, attempt: int) -> bool:
        """True when an export numbered above `attempt` ran into trouble (failed, or logged an error)."""
        return self._failed_at > attempt

    def succeeded_since(self, attempt: int) -> bool:
        """True when an export numbered above `attempt` delivered its batch."""
        return self._succeeded_at > attempt

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        error: str | None = None
        self._trouble.clear()
        self._attempts += 1  # before _exporting: `retrying` must not take the last export's failure for this one's
        self._exporting = True
        try:
            with _captured_logs(self) as records:
                try:
                    result = self.inner.export(spans)
                except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the export thread
                    result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        finally:
            self._exporting = False
        if result is SpanExportResult.SUCCESS:
            self._trouble.clear()
            self._succeeded_at = self._attempts
            self._recovered()
        else:
            self._trouble.set()
            self._failed_at = self._attempts
            if error is None:
                error = records[0].getMessage() if records else "the exporter reported a failure"
            self._failed(safe_reason(error))
        return result

    def _note_trouble(self, message: str) -> None:
        self.last_error = safe_reason(message)
        self._failed_at = self._attempts
        self._trouble.set()

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        if self._failing:
            return
        self._failing = True
        now = time.monotonic()
        if self._closed or (self._warned_at is not None and now - self._warned_at < REWARN_AFTER_S):
            return  # after shutdown the drop report (with this reason) has the last word
        self._warned_at, self._warned_this_outage = now, True
        logger.warning("lmscope: exporter %s cannot deliver spans to %s (%s); the program is unaffected, spans are "
                       "dropped while this lasts and counted at exit", self.name, self.destination, reason)

    def _recovered(self) -> None:
        if not self._failing:
            return
        self._failing = False
        if self._warned_this_outage:
            self._warned_this_outage = False
            logger.info("lmscope: exporter %s delivers spans to %s again", self.name, self.destination)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:  # noqa: BLE001
            return False

    def shutdown(self, timeout_millis: int | None = None) -> None:
        self._closed = True
        try:
            if self._shutdown_takes_timeout and timeout_millis is not None:
                self.inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
            else:
                self.inner.shutdown()
        except Exception as exc:  # noqa: BLE001 - shutting down must not fail the app's exit
            logger.debug("lmscope: exporter %s failed to shut down: %s", self.name, safe_reason(repr(exc)))
