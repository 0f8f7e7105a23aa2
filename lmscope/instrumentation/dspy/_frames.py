"""Per-call state, kept in the OpenTelemetry context rather than on DSPy objects.

Optimizers deep-copy modules and DSPy shares LMs across threads, so nothing may be stored on them
(research dspy-internals §8.11). A frame lives exactly as long as its span; the OTel context carries it to
child calls, to asyncio tasks and (through our ParallelExecutor patch) to worker threads.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from ...telemetry._lm_call import LMCall
from ...telemetry._span_context import current_context
from ...telemetry._spend import Spend

FRAME_KEY = otel_context.create_key("lmscope-dspy-frame")
BATCH_ITEM_KEY = otel_context.create_key("lmscope-dspy-batch-item")
"""(index, launching frame) set in a worker thread; only the worker's top span takes the index."""
OVERRIDES_KEY = otel_context.create_key("lmscope-dspy-overrides")
"""frozenset of the settings keys set by the active `dspy.context(...)` blocks."""

# Roll-ups from worker threads land on a parent frame owned by another thread; one lock for all merges
# is uncontended in practice (a merge happens once per finished span) and keeps the counters exact.
_merge_lock = threading.Lock()


class ModuleFrame:
    """A module call, or a container (`batch`, `Parallel`, `Evaluate`) whose children run in workers."""

    __slots__ = ("span", "path", "module", "parent", "totals", "container", "rolls_up", "timing", "retriever", "ended")

    def __init__(self, span: Span, path: str, module: Any, parent: ModuleFrame | None, container: bool,
                 recording: bool = True) -> None:
        self.span = span
        self.path = path
        self.module = module
        self.parent = parent
        self.totals = Spend()
        """The subtree's spend so far. Changed only under `_merge_lock`: worker threads merge into it."""
        self.container = container
        self.rolls_up = recording or (parent is not None and parent.rolls_up)
        """Whether this frame or an ancestor records: only then is anyone going to read the roll-ups."""
        self.timing: tuple[str, float] | None = None
        """(module path, perf_counter at start), set only when someone listens for module durations."""
        self.retriever = False
        """A recording RETRIEVER span: its output becomes document attributes."""
        self.ended = False

    def add_call(self, call: LMCall) -> None:
        with _merge_lock:
            self._writable().add_call(call)

    def end(self, parent: ModuleFrame | None) -> Spend:
        """The totals the ended span reports, added into `parent`'s (if given). They stay as they are: a child
        that ends later (a straggling worker) adds to a copy, which the parent never sees either."""
        with _merge_lock:
            self.ended = True
            totals = self.totals
            if parent is not None and totals.calls:
                parent._writable().add(totals)
            return totals

    def _writable(self) -> Spend:
        if self.ended:  # copy on write: the ended span's deferred roll-up reads the original
            self.totals, self.ended = self.totals.copy(), False
        return self.totals


class LMFrame:
    """An LM call; `finalize` and the cache probe fill it in, the LM wrapper turns it into attributes."""

    __slots__ = ("span", "parent", "lm", "model", "provider", "started", "call", "result", "cache_layer",
                 "cache_key_memo", "stored_record", "trackers")

    def __init__(self, span: Span, parent: ModuleFrame | None, lm: Any, model: str, provider: str | None,
                 started: float, trackers: tuple[Any, ...] = ()) -> None:
        self.span = span
        self.trackers = trackers
        """The `lmscope.track()` blocks the call runs in."""
        self.parent = parent
        self.lm = lm
        self.model = model
        self.provider = provider
        self.started = started
        self.call: Any = None
        self.result: Any = None
        self.cache_layer: str | None = None
        self.cache_key_memo: tuple[Any, str] | None = None
        self.stored_record: Any = None


def current_lm_frame() -> LMFrame | None:
    frame = current_context().get(FRAME_KEY)
    return frame if type(frame) is LMFrame else None
