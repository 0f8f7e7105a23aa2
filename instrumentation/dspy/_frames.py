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

from ...telemetry.lm_call import LMCall

FRAME_KEY = otel_context.create_key("lmscope-dspy-frame")
BATCH_ITEM_KEY = otel_context.create_key("lmscope-dspy-batch-item")
"""(index, launching frame) set in a worker thread; only the worker's top span takes the index."""
OVERRIDES_KEY = otel_context.create_key("lmscope-dspy-overrides")
"""frozenset of the settings keys set by the active `dspy.context(...)` blocks."""

# Roll-ups from worker threads land on a parent frame owned by another thread; one lock for all merges
# is uncontended in practice (a merge happens once per finished span) and keeps the counters exact.
_merge_lock = threading.Lock()


class Totals:
    """What a module's subtree spent: summed LM calls, merged upward when each frame ends."""

    __slots__ = ("lm_calls", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "cache_hits",
                 "saved_usd", "unpriced_calls")

    def __init__(self) -> None:
        self.lm_calls = self.input_tokens = self.output_tokens = self.cached_tokens = 0
        self.cache_hits = self.unpriced_calls = 0
        self.cost_usd = self.saved_usd = 0.0

    def add_call(self, call: LMCall) -> None:
        with _merge_lock:
            self.lm_calls += 1
            self.input_tokens += call.input_tokens
            self.output_tokens += call.output_tokens
            self.cached_tokens += call.cached_tokens
            if call.cache_hit:
                self.cache_hits += 1
                self.saved_usd += call.saved_usd or 0.0
            if call.cost_usd is None:
                self.unpriced_calls += 1
            else:
                self.cost_usd += call.cost_usd

    def add(self, other: Totals) -> None:
        if not other.lm_calls:  # every field only grows in add_call, which counts the call: all zero
            return
        with _merge_lock:
            self.lm_calls += other.lm_calls
            self.input_tokens += other.input_tokens
            self.output_tokens += other.output_tokens
            self.cached_tokens += other.cached_tokens
            self.cost_usd += other.cost_usd
            self.cache_hits += other.cache_hits
            self.saved_usd += other.saved_usd
            self.unpriced_calls += other.unpriced_calls


class ModuleFrame:
    """A module call, or a container (`batch`, `Parallel`, `Evaluate`) whose children run in workers."""

    __slots__ = ("span", "path", "module", "parent", "totals", "container", "rolls_up")

    def __init__(self, span: Span, path: str, module: Any, parent: ModuleFrame | None, container: bool,
                 recording: bool = True) -> None:
        self.span = span
        self.path = path
        self.module = module
        self.parent = parent
        self.totals = Totals()
        self.container = container
        self.rolls_up = recording or (parent is not None and parent.rolls_up)
        """Whether this frame or an ancestor records: only then is anyone going to read the roll-ups."""


class LMFrame:
    """An LM call; `finalize` and the cache probe fill it in, the LM wrapper turns it into attributes."""

    __slots__ = ("span", "parent", "lm", "model", "provider", "started", "call", "result", "cache_layer",
                 "cache_key_memo", "stored_record")

    def __init__(self, span: Span, parent: ModuleFrame | None, lm: Any, model: str, provider: str | None,
                 started: float) -> None:
        self.span = span
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


def current_frame() -> ModuleFrame | LMFrame | None:
    return otel_context.get_current().get(FRAME_KEY)


def current_lm_frame() -> LMFrame | None:
    frame = otel_context.get_current().get(FRAME_KEY)
    return frame if type(frame) is LMFrame else None
