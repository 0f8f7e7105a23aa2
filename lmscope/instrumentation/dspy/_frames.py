"""Per-call state, kept in the OpenTelemetry context rather than on DSPy objects.

Optimizers deep-copy modules and DSPy shares LMs across threads, so nothing may be stored on them
(docs/dspy-internals.md §9). A frame lives exactly as long as its span; the OTel context carries it to
child calls, to asyncio tasks and (through our ParallelExecutor patch) to worker threads.

A frame is also the record a wrapper carries from the start of a call to its end: the span, the token of
the context attached for the call, and what the hooks in between (`finalize`, the cache probe) learned.
"""

from __future__ import annotations

import threading
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span

from ...telemetry import _semconv as semconv
from ...telemetry._lm_call import LMCall
from ...telemetry._one_step_context import instrumentation_suppressed
from ...telemetry._spend import Spend
from ...telemetry._usage import Usage

FRAME_KEY = otel_context.create_key("lmscope-dspy-frame")
BATCH_ITEM_KEY = otel_context.create_key("lmscope-dspy-batch-item")
"""A `BatchItem`, set in a worker thread; only the worker's top span takes the index."""
OVERRIDES_KEY = otel_context.create_key("lmscope-dspy-overrides")
"""{settings key: the value set} of the active `dspy.context(...)` blocks (`_settings.py`)."""
ADAPTER_KEY = otel_context.create_key("lmscope-dspy-fallback-adapter")
"""(adapter class name, class name of the adapter it stands in for), set while a fallback adapter runs."""
OWN_SUPPRESSION_KEY = otel_context.create_key("lmscope-dspy-own-suppression")
"""Set (True) in the context of lmscope's LM span, next to the suppression it enters for other instrumentations."""
EMBEDDING_LOOKUP_KEY = otel_context.create_key("lmscope-dspy-embedding-lookup")
"""The `EmbeddingLookup` of the `dspy.Embedder` batch whose request-cache lookup is under way."""


class EmbeddingLookup:
    """One `dspy.Embedder` batch looked up in DSPy's request cache: `sent` once the miss computes it."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


def app_suppressed() -> bool:
    """True inside the app's `suppress_instrumentation()`: lmscope starts no span and records nothing there.

    Suppression lmscope entered itself (inside its own LM span, so that other instrumentations stand down) does
    not count: DSPy calls made inside an LM call (a custom LM calling another, the cache hooks) stay traced, and so
    do LiteLLM calls that are not DSPy's own request (`litellm/_in_dspy_lm.py`). Suppression the app enters inside
    lmscope's LM span cannot be told from lmscope's own, and is not honoured."""
    ctx = otel_context.get_current()
    return instrumentation_suppressed(ctx) and ctx.get(OWN_SUPPRESSION_KEY) is not True


# Roll-ups from worker threads land on a parent frame owned by another thread; one lock for all merges
# is uncontended in practice (a merge happens once per finished span) and keeps the counters exact.
_merge_lock = threading.Lock()
_count_lock = threading.Lock()
"""Guards `ModuleFrame.child_calls`: children of one frame may start in several worker threads at once."""


class BatchItem:
    """Which item of a `batch`/`Parallel`/`Evaluate` a worker thread runs, and the frame that launched it."""

    __slots__ = ("index", "launcher")

    def __init__(self, index: int, launcher: object) -> None:
        self.index = index
        self.launcher = launcher


class ModuleFrame:
    """A module call, or a container (`batch`, `Parallel`, `Evaluate`) whose children run in workers."""

    __slots__ = ("asked_lm", "child_calls", "container", "documents", "ended", "kind_by_default", "later", "module",
                 "parent", "path", "retriever", "rolls_up", "span", "timing", "token", "totals")

    def __init__(self, span: Span, path: str, module: Any, parent: ModuleFrame | None, container: bool,
                 recording: bool) -> None:
        self.span = span
        self.path = path
        self.module = module
        self.parent = parent
        self.totals = Spend()
        """The subtree's spend so far. Changed only under `_merge_lock`: worker threads merge into it."""
        self.asked_lm = False
        """Whether the subtree asked an LM for text (a chat or text completion call, not an embedding): a module that
        returns passages it asked an LM for is no retriever, one that embedded its query to search is."""
        self.container = container
        self.rolls_up: bool = recording or (parent is not None and parent.rolls_up)
        """Whether this frame or an ancestor records: only then is anyone going to read the roll-ups."""
        self.timing: tuple[str, float, str] | None = None
        """(module path, perf_counter at start, phase), set only when someone listens for module durations."""
        self.retriever = False
        """A recording RETRIEVER span: its output becomes document attributes."""
        self.later = False
        """Its attributes are stored on export (`telemetry/_attributes_on_export.py`)."""
        self.documents: Any = None
        """What a retriever's backend answered, when its return value drops the ids (`dspy.ColBERTv2`'s `pid` with
        `simplify=True`): listed as the span's documents instead of the return value."""
        self.kind_by_default = False
        """A module span that is CHAIN for want of anything saying otherwise (no kind given by the caller or declared
        by its class, a name that says nothing): what it returns may still make it a retriever."""
        self.ended = False
        self.token: Token[Context] | None = None
        """The token of the context attached for this call (`opentelemetry.context.attach`)."""
        self.child_calls: dict[str, int] | None = None
        """Child module path -> how many calls of it this frame has started (made on the first child)."""

    def next_call_index(self, path: str) -> int:
        """The position of this call of the child module at `path` among this frame's calls of it: 0, 1, 2 ..."""
        with _count_lock:
            calls = self.child_calls
            if calls is None:
                calls = self.child_calls = {}
            index = calls.get(path, 0)
            calls[path] = index + 1
        return index

    def add_call(self, call: LMCall) -> None:
        with _merge_lock:
            if not self.ended:
                self.totals.add_call(call)
                if call.operation != semconv.GEN_AI_OPERATION_EMBEDDINGS:
                    self.asked_lm = True

    def end(self, parent: ModuleFrame | None) -> Spend:
        """Close the frame: add its totals into `parent`'s (if given) and return them. They no longer change:
        a child that ends after its parent (a straggling worker thread) is not counted, since the parent's span
        has already reported its roll-ups and passed them on."""
        with _merge_lock:
            self.ended = True
            if parent is not None and not parent.ended:
                parent.totals.add(self.totals)
                parent.asked_lm = parent.asked_lm or self.asked_lm
            return self.totals


class LMFrame:
    """An LM call; `finalize` and the cache probe fill it in, the LM wrapper turns it into attributes."""

    __slots__ = ("answers_outer", "cache_key_memo", "cache_layer", "call", "children", "dspy_requested", "forwarded",
                 "later", "lm", "model", "operation", "outer", "parent", "phase", "provider", "requests_in_children",
                 "resent", "result", "span", "started", "stored_record", "token", "trackers")

    def __init__(self, span: Span, parent: ModuleFrame | None, lm: Any, model: str, provider: str | None,
                 started: float, trackers: tuple[Usage, ...]) -> None:
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
        self.later = False
        """Its attributes are stored on export (`telemetry/_attributes_on_export.py`)."""
        self.cache_key_memo: tuple[Any, str] | None = None
        self.stored_record: Any = None
        self.token: Token[Context] | None = None
        """The token of the context attached for this call (`opentelemetry.context.attach`)."""
        self.phase = semconv.PHASE_SERVE
        """`lmscope.phase` where the call started."""
        self.resent = 0
        """Provider requests of the call that failed and were sent again (`_retries.py`)."""
        self.operation = semconv.GEN_AI_OPERATION_CHAT
        """`gen_ai.operation.name`: `text_completion` for an LM of `model_type="text"`, else chat."""
        self.outer: LMFrame | None = None
        """The DSPy LM call this one runs inside of (a custom LM calling another LM), told of this call's count."""
        self.answers_outer = True
        """This call may be how `outer` answers: made by its LM's code, not by a DSPy callback around it."""
        self.forwarded = False
        """DSPy's request was made through `LM.forward` inside this call (`_forward_requests.py`)."""
        self.children: Spend | None = None
        """The LM calls counted on spans of their own inside this call (`_lm_children.py`), made on the first."""
        self.requests_in_children = 0
        """How many of them were counted before DSPy had this call's result: its request, made by the LM's own code."""
        self.dspy_requested = False
        """DSPy's own code sent a LiteLLM request for this call (no span of its own: this span is the request's)."""

    def add_child(self, call: LMCall, *, request: bool = True) -> None:
        """An LM call made inside this one was counted on a span of its own, a child of this call's; `request`: by the
        LM's own code, which may be how it answers (not a DSPy callback's call)."""
        spend = Spend()
        spend.add_call(call)
        self.add_children(spend, requests=request)

    def add_children(self, spend: Spend, *, requests: bool = True) -> None:
        """LM calls made inside this one were counted on spans of their own (`spend`: theirs): an inner DSPy LM call
        that gave way to its own children passes theirs on. `requests`: made by the LM's own code."""
        with _merge_lock:  # children may end in threads the LM's code started
            if self.children is None:
                self.children = Spend()
            self.children.add(spend)
            if requests and self.result is None:
                self.requests_in_children += spend.calls


def current_lm_frame() -> LMFrame | None:
    frame = otel_context.get_current().get(FRAME_KEY)  # `get_value`, one call less: this runs several times a call
    return frame if type(frame) is LMFrame else None
