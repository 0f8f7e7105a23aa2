"""How much does lmscope add to a DSPy program call, next to the bare OTel SDK and OpenInference?

    python benchmarks/bench_overhead.py [--calls N] [--rounds R] [--quick] [--profile] [--json PATH]

One process, the demo's 3-step DSPy RAG program (`lmscope._demo.build_program`: rewrite -> retrieve ->
answer) on DummyLM, measured under configurations that are switched on and off in shuffled rounds of
blocks, so machine noise (this is a shared 2-core box) hits every configuration alike and each round
gives a paired difference against the uninstrumented base:

    base          no instrumentation
    lmscope_noop  lmscope's DSPyInstrumentor -> lmscope's own provider and batch processor (no-op exporter), as
                  `lmscope.instrument()` runs it: captured content is built in the export thread
    lmscope_file  the same, exporting through OtlpJsonFileExporter to a temp file
    lmscope_read  the same, exporting to an exporter that reads every attribute, event and link and keeps
                  nothing (what a real exporter does): its total CPU counts the export thread too
    lmscope_metrics  lmscope_noop plus metrics: lmscope's instruments on an SDK MeterProvider (in-memory
                  reader, no exemplars: what `metrics_exporters="prometheus"` records; recording costs the same
                  whatever pull reader later exports it)
    openinference openinference-instrumentation-dspy -> SDK TracerProvider -> BatchSpanProcessor(no-op)
    sdk_in_dspy   the same empty SDK spans lmscope makes, at the same places (every module and LM call)
    sdk_values_in_dspy  sdk_in_dspy with each span carrying, ready made, the attributes lmscope stored there: what
                  storing the span contract's values costs the SDK, apart from lmscope's own code
    (--decompose) lmscope_nocontent, lmscope_unsampled, lmscope_metrics_exemplars, and lmscope_in_call: lmscope on
                  an app's SDK provider (BatchSpanProcessor(no-op)), where content is built in the call

plus, in the same rounds, the bare SDK cost of one span (`start_span` + context attach/detach,
BatchSpanProcessor(no-op)) for a tree of empty spans shaped like one lmscope pipeline call.
The goals are two ratios of program-thread overhead per call: lmscope_noop / openinference <= 1/5 and
lmscope_noop / sdk_in_dspy <= 2. Then, in fresh subprocesses, `import lmscope` time and the start-up/
peak-RSS cost of instrumenting an app that imports dspy. It is a measurement, not a test: the exit code is
0 even when a goal FAILs.
Method notes (interleaving, paired medians, the OpenInference uninstrument bug, the BatchSpanProcessor
steady-state effect) follow the earlier research benchmark; see benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Before dspy is imported: no cost-map download from GitHub, and DSPy's disk cache in a throwaway dir.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
_WORKDIR = tempfile.TemporaryDirectory(prefix="lmscope-bench-")
os.environ["DSPY_CACHEDIR"] = os.path.join(_WORKDIR.name, "dspy_cache")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import dspy  # noqa: E402
from dspy.utils import DummyLM  # noqa: E402
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import trace as trace_api  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler  # noqa: E402

# Goals (DESIGN.md §1 "overhead near the bare OpenTelemetry SDK cost"; the budgets), on the program
# thread's overhead per call, paired per round against base.
GOAL_OI_FRACTION = 0.2  # lmscope_noop <= 1/5 of OpenInference's
GOAL_SDK_IN_DSPY_MULTIPLE = 2.0  # lmscope_noop <= 2x the same empty SDK spans at the same places (sdk_in_dspy)
GOAL_IMPORT_S = 0.150
GOAL_STARTUP_S = 0.3
GOAL_STARTUP_MB = 25.0

# More than 512 spans without a flush, then a short sleep, so every BatchSpanProcessor worker has done
# its first export before timing starts: research perf.md §3.4 found a per-span slowdown that begins
# exactly there and persists, which short force-flushed blocks alone would never reach. The sleep is
# needed because a tight DSPy loop starves the woken worker of the GIL (it did not run for 0.2 s+ here).
WARMUP_CALLS = 80
WORKER_WAKE_S = 0.1
FLOOR_TREES_PER_CALL = 4
SUBPROCESS_RUNS = 5

# --------------------------------------------------------------------------------------------------
# The program under test


QUESTIONS = ("What is the capital of France?", "Who wrote Hamlet?", "How far is the Moon?")
PASSAGES = ("Paris is the capital of France.", "Hamlet is a play by Shakespeare.",
            "The Moon is about 384,400 km from Earth.")
ANSWER = "a short answer"


def fixed_passages(query: str) -> tuple[str, ...]:
    """The retrieval step: no LM, the same passages for every query, so every call costs the same."""
    return PASSAGES


def make_program() -> Any:
    """The demo's RAG program (rewrite -> retrieve -> answer: 7 lmscope spans per call) over fixed passages."""
    from lmscope._demo import build_program

    return build_program(retrieve=fixed_passages)


RAG = make_program  # the name bench_backend_down.py builds the same program by


def make_lm() -> DummyLM:
    # Dict mode answers by a key found in the last prompt message, so it never runs out. The answer
    # step's prompt contains both field headers, so its key must come first (first match wins).
    return DummyLM({
        "[[ ## context ## ]]": {"reasoning": "The passages say so.", "answer": ANSWER},
        "[[ ## question ## ]]": {"query": "search terms"},
    })


def clear_histories(lm: DummyLM) -> None:
    # Both grow by one entry per LM call; left alone they slow later blocks and inflate memory.
    from dspy.clients.base_lm import GLOBAL_HISTORY

    lm.history.clear()
    GLOBAL_HISTORY.clear()


# --------------------------------------------------------------------------------------------------
# Exporters


class CountingExporter(SpanExporter):
    """Counts exported spans exactly, then hands them to `inner` (or drops them: a no-op exporter)."""

    def __init__(self, inner: SpanExporter | None = None) -> None:
        self.inner = inner
        self.spans = 0  # only touched under the BatchSpanProcessor's export lock

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return self.inner.export(spans) if self.inner is not None else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis) if self.inner is not None else True

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()


class AttributeReadingExporter(SpanExporter):
    """Reads every attribute, event and link of every span, as any real exporter does, and keeps nothing.

    Its export thread's CPU shows in the total-CPU column (all threads of the process, the flush after each
    block included), next to the program-thread cost.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            dict(span.attributes)
            for event in span.events:
                dict(event.attributes or {})
            tuple(span.links)
        return SpanExportResult.SUCCESS


def batch_provider(exporter: SpanExporter, sampler: Sampler | None = None) -> TracerProvider:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def lmscope_pipeline(exporter: SpanExporter) -> tuple[TracerProvider, Any]:
    """What `lmscope.instrument(exporters=...)` runs, with `exporter` as its one exporter: lmscope's own provider
    (in a registry of this benchmark's own, so nothing global), its batch processor, and a tracer of its own
    scope. Spans that go only to lmscope's processors leave their content to the export thread
    (lmscope/telemetry/_attributes_on_export.py)."""
    from opentelemetry.trace import ProxyTracerProvider

    from lmscope.telemetry._batch_export import BatchExportProcessor
    from lmscope.telemetry._options import resolve_options
    from lmscope.telemetry._tracer_provider import ProviderRegistry

    registry = ProviderRegistry(get_global=ProxyTracerProvider, at_exit=lambda _hook: None)
    setup = registry.setup(resolve_options(), [BatchExportProcessor(exporter)])
    tracer = setup.tracer("bench")
    provider = registry.own_provider
    assert provider is not None and tracer.resolve()[1]  # type: ignore[attr-defined]
    return provider, tracer


# --------------------------------------------------------------------------------------------------
# Proof that "off" really is off


def _tracked(value: Any) -> bool:
    # Instrumentors replace functions and descriptors; plain data attributes (caches, counters) may
    # legitimately change while DSPy runs and would only be noise here.
    # Look at the type only: DSPy's lazy-import placeholders raise from instance __getattr__.
    return callable(value) or hasattr(type(value), "__get__")


class DSPySnapshot:
    """Every function/descriptor in the dicts of DSPy's modules and classes, taken before any patching.

    OpenInference's uninstrument follows whole `__wrapped__` chains and so also strips DSPy's own
    `@with_callbacks` decorators (research perf.md §4), and it leaves entries it added on subclasses
    (`LM.__call__`). `restore()` puts back the very objects seen here, so the base really is the base.
    """

    def __init__(self) -> None:
        self.owners: dict[int, tuple[Any, dict[str, Any]]] = {}
        for module in [m for name, m in list(sys.modules.items()) if name.split(".")[0] == "dspy" and m]:
            self._take(module)
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__.split(".")[0] == "dspy":
                    self._take(value)
        self.module_call = vars(dspy.Module)["__call__"]
        self.base_lm_call = vars(_base_lm_class())["__call__"]

    def _take(self, owner: Any) -> None:
        if id(owner) not in self.owners:
            self.owners[id(owner)] = (owner, {k: v for k, v in vars(owner).items() if _tracked(v)})

    def diff(self) -> list[tuple[Any, str, Any]]:
        """(owner, name, original) for every tracked entry that changed; original is None for added ones."""
        changed = []
        for owner, entries in self.owners.values():
            now = vars(owner)
            for name, original in entries.items():
                if now.get(name) is not original:
                    changed.append((owner, name, original))
            # Added entries count too, wrapped or not: OpenInference's unwrap leaves a bare
            # `DummyLM.__call__` behind that shadows `BaseLM.__call__` (and any later patch of it).
            for name, value in now.items():
                if name not in entries and _tracked(value):
                    changed.append((owner, name, None))
        return changed

    def restore(self) -> list[str]:
        changed = self.diff()
        for owner, name, original in changed:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        return [f"{getattr(owner, '__qualname__', owner.__name__)}.{name}" for owner, name, _ in changed]

    def is_pristine(self) -> bool:
        # The quick identity check first (the two entry points every instrumentor wraps), then all of it.
        return (vars(dspy.Module)["__call__"] is self.module_call
                and vars(_base_lm_class())["__call__"] is self.base_lm_call and not self.diff())


def _base_lm_class() -> type:
    from dspy.clients.base_lm import BaseLM

    return BaseLM


def import_patched_dspy_modules() -> None:
    """Import every DSPy module either instrumentor patches, so the snapshot covers their classes."""
    import importlib.util

    import dspy.adapters.chat_adapter
    import dspy.adapters.types.tool
    import dspy.clients.cache
    import dspy.evaluate.evaluate
    import dspy.predict.parallel
    import dspy.retrievers.embeddings
    import dspy.retrievers.retrieve
    import dspy.utils.parallelizer

    if importlib.util.find_spec("dspy.clients.execution") is not None:  # DSPy 3.4 on
        import dspy.clients.execution  # noqa: F401


# --------------------------------------------------------------------------------------------------
# Configurations


@dataclass
class Config:
    name: str
    describe: str
    switch_on: Callable[[], None] = lambda: None
    switch_off: Callable[[], None] = lambda: None
    provider: TracerProvider | None = None
    counter: CountingExporter | None = None
    skipped: str | None = None  # why it could not be built
    records: bool = True  # False when its sampler drops every span
    # filled while running
    per_call_ns: list[int] = field(default_factory=list)
    per_call_cpu_ns: list[int] = field(default_factory=list)
    block_medians: list[float] = field(default_factory=list)  # µs, one per round
    block_cpu_medians: list[float] = field(default_factory=list)
    block_amortized: list[float] = field(default_factory=list)  # µs/call incl. the flush after the block
    block_total_cpu: list[float] = field(default_factory=list)  # CPU µs/call of all threads, flush included
    gc_collections: int = 0  # garbage collections the program's thread ran in the timed calls
    gc_ns: int = 0  # their CPU time
    spans_per_call: list[float] = field(default_factory=list)  # one per block
    restored_after_off: list[str] = field(default_factory=list)

    def flush(self) -> float:
        """Export everything queued; returns the seconds it took."""
        if self.provider is None:
            return 0.0
        started = time.perf_counter()
        self.provider.force_flush()
        return time.perf_counter() - started


def base_config() -> Config:
    return Config("base", "no instrumentation")


def lmscope_config(name: str, describe: str, make_exporter: Callable[[], SpanExporter | None], *,
                   capture_content: bool = True, sampler: Sampler | None = None, metrics: bool = False,
                   exemplars: bool = False, in_call: bool = False) -> Config:
    """`in_call`: on a provider of the app's (a plain SDK one) instead of lmscope's own, as under
    `opentelemetry-instrument` or once the app set a global provider: content is built on the program's thread."""
    try:
        from lmscope.instrumentation.dspy import DSPyInstrumentor

        inner = make_exporter()
        listeners = metric_listeners(exported=exemplars) if metrics else {}
    except Exception as exc:  # noqa: BLE001 - the module may still be being written by another engineer
        return Config(name, describe, skipped=f"{type(exc).__name__}: {exc}")
    counter = CountingExporter(inner)
    if sampler is None and not in_call:
        provider, tracer = lmscope_pipeline(counter)
    else:  # an app's provider (its sampler), where lmscope builds content in the call
        provider = batch_provider(counter, sampler)
        tracer = provider.get_tracer("bench")
    instrumentor = DSPyInstrumentor()
    return Config(name, describe,
                  lambda: instrumentor.instrument(tracer, capture_content=capture_content, **listeners),
                  instrumentor.uninstrument, provider, counter, records=sampler is None)


def metric_listeners(*, exported: bool = False) -> dict[str, Any]:
    """The hooks `lmscope.instrument(metrics_exporters=...)` registers, on a MeterProvider of their own; `exported`:
    as with an OTLP or console exporter, which sample an exemplar per measurement in a sampled span."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.telemetry._metrics import MetricsRecorder
    from lmscope.telemetry._metrics_setup import _exemplar_filter

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()],
                             exemplar_filter=_exemplar_filter(exported=exported))
    recorder = MetricsRecorder(provider.get_meter("lmscope"))
    return {"lm_call_listeners": [recorder.record_lm_call], "module_listeners": [recorder.record_module]}


def file_exporter(path: str) -> SpanExporter:
    from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter

    return OtlpJsonFileExporter(path)


SPANS_FILE = os.path.join(_WORKDIR.name, "spans.otlp.jsonl")


def spans_in_otlp_file(path: str) -> int:
    """Spans written to an OTLP/JSON lines file: one ExportTraceServiceRequest per line."""
    total = 0
    with open(path) as f:
        for line in f:
            if line.strip():
                request = json.loads(line)
                total += sum(len(scope.get("spans", [])) for resource in request.get("resourceSpans", [])
                             for scope in resource.get("scopeSpans", []))
    return total


def openinference_config(snapshot: DSPySnapshot) -> Config:
    from openinference.instrumentation.dspy import DSPyInstrumentor as OIInstrumentor

    counter = CountingExporter()
    provider = batch_provider(counter)
    instrumentor = OIInstrumentor()

    def switch_off() -> None:
        instrumentor.uninstrument()
        # The workaround: put DSPy's own decorators back and drop what unwrap left (see DSPySnapshot).
        config.restored_after_off.extend(snapshot.restore())

    config = Config("openinference", "openinference-instrumentation-dspy -> SDK + BatchSpanProcessor(no-op)",
                    lambda: instrumentor.instrument(tracer_provider=provider), switch_off, provider, counter)
    return config


# --------------------------------------------------------------------------------------------------
# The bare SDK: the same span tree, empty


@dataclass
class SpanNode:
    name: str
    children: list[SpanNode] = field(default_factory=list)

    def size(self) -> int:
        return 1 + sum(child.size() for child in self.children)


# lmscope's span contract for this program (DESIGN.md §3), used if lmscope cannot run to show its own.
DESIGN_SHAPE = SpanNode("rag", [SpanNode("rag.rewrite", [SpanNode("chat dummy")]), SpanNode("rag.retrieve"),
                                SpanNode("rag.answer", [SpanNode("rag.answer.predict", [SpanNode("chat dummy")])])])


def shape_of(spans: Sequence[ReadableSpan]) -> SpanNode:
    """The parent/child tree of one trace's spans, children in start order."""
    nodes = {span.context.span_id: SpanNode(span.name) for span in spans}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        node = nodes[span.context.span_id]
        parent = nodes.get(span.parent.span_id) if span.parent is not None else None
        (parent.children if parent is not None else roots).append(node)
    if len(roots) != 1:
        raise RuntimeError(f"expected one root span per pipeline call, got {len(roots)}")
    return roots[0]


def capture_lmscope_shape(program: Any, snapshot: DSPySnapshot) -> tuple[SpanNode, str]:
    shape, source, _values = capture_lmscope_spans(program, snapshot)
    return shape, source


SpanValues = dict[str, list[dict[str, Any]]]
"""question -> the attributes lmscope put on each span of a call with that question, in span start order."""


def capture_lmscope_spans(program: Any, snapshot: DSPySnapshot) -> tuple[SpanNode, str, SpanValues]:
    """The span tree lmscope draws for one pipeline call, and the attributes it stores per question."""
    try:
        from lmscope.instrumentation.dspy import DSPyInstrumentor
    except Exception as exc:  # noqa: BLE001
        return DESIGN_SHAPE, f"DESIGN.md §3 contract (lmscope not importable: {exc})", {}
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("bench-shape"), capture_content=True)
    values: SpanValues = {}
    try:
        for question in QUESTIONS:
            memory.clear()
            program(question=question)
            spans = sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0)
            values[question] = [dict(span.attributes or {}) for span in spans]
    finally:
        instrumentor.uninstrument()
        leftovers = snapshot.restore()
    if leftovers:
        print(f"WARNING: lmscope uninstrument left patched entries: {leftovers}", file=sys.stderr)
    return shape_of(memory.get_finished_spans()), "lmscope_noop, captured from one pipeline call", values


def make_span_tree_runner(tracer: trace_api.Tracer, root: SpanNode) -> Callable[[], None]:
    start_span, attach, detach, in_context = tracer.start_span, otel_context.attach, otel_context.detach, \
        trace_api.set_span_in_context

    def open_span(node: SpanNode) -> None:
        # What an instrumentor has to do at minimum: a span, made current for its children.
        span = start_span(node.name)
        token = attach(in_context(span))
        for child in node.children:
            open_span(child)
        detach(token)
        span.end()

    return lambda: open_span(root)


def sdk_floor_config(shape: SpanNode) -> Config:
    counter = CountingExporter()
    provider = batch_provider(counter)
    return Config("sdk_floor", f"bare SDK: {shape.size()} empty nested spans, start_span + attach/detach, "
                               "BatchSpanProcessor(no-op)", provider=provider, counter=counter)


def bare_span_around(tracer: trace_api.Tracer, original: Callable[..., Any],
                     attributes_for: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Callable[..., Any]:
    """`original` inside an SDK span made current, with the attributes `attributes_for(kwargs)` hands it, ready made:
    what the SDK alone costs at an instrumentor's place, with no instrumentor code."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = tracer.start_span("span", attributes=attributes_for(kwargs))
        token = otel_context.attach(trace_api.set_span_in_context(span))
        try:
            return original(*args, **kwargs)
        finally:
            otel_context.detach(token)
            span.end()
    return wrapper


def sdk_in_dspy_config(values: SpanValues | None = None) -> Config:
    """The bare SDK span where lmscope pays for it: the same empty spans, opened around the real DSPy calls.

    A do-nothing instrumentor on the two methods that make lmscope's 7 spans (every module call and every LM
    call): `start_span`, attach, detach, end, nothing else. It shows what the SDK's spans cost inside DSPy's
    call stacks, against `sdk_floor`'s tight loop with warm caches.

    With `values` (`sdk_values_in_dspy`), each span also carries, ready made, the attributes lmscope stored on the
    span at its place for the same question: what the SDK charges to store lmscope's values, with none of
    lmscope's code. lmscope_noop minus this is what lmscope's own code costs.
    """
    counter = CountingExporter()
    provider = batch_provider(counter)
    tracer = provider.get_tracer("bench")
    # The LM's `__call__` is BaseLM's, or DummyLM's own before DSPy 3.3 (which never calls BaseLM's).
    lm_owner = next(cls for cls in DummyLM.__mro__ if "__call__" in vars(cls))
    targets = ((dspy.Module, "__call__"), (lm_owner, "__call__"))
    originals: dict[tuple[type, str], Any] = {}
    pending: list[dict[str, Any]] = []  # this call's attributes still to hand out, in span start order

    def attributes_for(kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if values is None:
            return None
        if not pending:  # the outermost call: its question picks the list
            pending.extend(reversed(values[kwargs["question"]]))
        return pending.pop()

    def switch_on() -> None:
        for owner, name in targets:
            originals[(owner, name)] = owner.__dict__[name]
            setattr(owner, name, bare_span_around(tracer, owner.__dict__[name], attributes_for))

    def switch_off() -> None:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)
        pending.clear()

    if values is not None:
        count = sum(len(attributes) for attributes in values[QUESTIONS[0]])
        return Config("sdk_values_in_dspy", f"sdk_in_dspy, each span carrying lmscope's {count} values, ready made",
                      switch_on, switch_off, provider, counter)
    return Config("sdk_in_dspy", "bare SDK spans inside DSPy: an empty span around every module and LM call",
                  switch_on, switch_off, provider, counter)


# --------------------------------------------------------------------------------------------------
# Running blocks


class GcMeter:
    """The garbage collections the program's thread runs while a block's calls are timed, and their CPU time: every
    container object a span keeps until its export counts towards the next collection (docs/cpython-gc.md)."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self._started = 0
        self._thread = threading.get_ident()
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        config = self.config
        if config is None or threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._started = time.thread_time_ns()
        else:
            config.gc_ns += time.thread_time_ns() - self._started
            config.gc_collections += 1


GC_METER = GcMeter()


def run_block(work: Callable[[int], Any], calls: int) -> tuple[list[int], list[int], Any]:
    """Wall and main-thread CPU ns of each call, and the last call's result."""
    wall, cpu, result = [], [], None
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i in range(calls):
        c0, t0 = cpu_clock(), clock()
        result = work(i)
        t1, c1 = clock(), cpu_clock()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return wall, cpu, result


class Bench:
    def __init__(self, program: Any, lm: DummyLM, snapshot: DSPySnapshot, configs: list[Config],
                 tree_runner: Callable[[], None], tree_size: int) -> None:
        self.program, self.lm, self.snapshot = program, lm, snapshot
        self.configs = [c for c in configs if c.skipped is None]
        self.tree_runner, self.tree_size = tree_runner, tree_size

    def _calls(self, config: Config, calls: int) -> int:
        # A span tree takes ~1/10 of a pipeline call: more of them per block steadies the floor's median.
        return calls * FLOOR_TREES_PER_CALL if config.name == "sdk_floor" else calls

    def work_for(self, config: Config) -> Callable[[int], Any]:
        if config.name == "sdk_floor":
            return lambda _i: self.tree_runner()
        program = self.program
        return lambda i: program(question=QUESTIONS[i % len(QUESTIONS)])

    def activate(self, config: Config) -> None:
        if not self.snapshot.is_pristine():
            raise RuntimeError(f"DSPy is not pristine before switching on {config.name}: {self.snapshot.diff()}")
        config.switch_on()
        instrumenting = config.provider is not None and config.name != "sdk_floor"
        if instrumenting and vars(dspy.Module)["__call__"] is self.snapshot.module_call:
            raise RuntimeError(f"{config.name} did not patch dspy.Module.__call__")

    def deactivate(self, config: Config) -> None:
        config.switch_off()
        # lmscope must restore exactly (its uninstrument promises it); anything left is recorded as a
        # finding and repaired so the next block still starts from the real base.
        if config.name != "openinference":
            config.restored_after_off.extend(self.snapshot.restore())
        if not self.snapshot.is_pristine():
            raise RuntimeError(f"{config.name} left DSPy patched after switching off: {self.snapshot.diff()}")

    def _between_blocks(self) -> None:
        clear_histories(self.lm)
        gc.collect()

    def warm_up(self, calls: int) -> list[str]:
        """Run every configuration once untimed; returns those whose export worker never ran."""
        asleep = []
        for config in self.configs:
            self.activate(config)
            run_block(self.work_for(config), calls)
            if config.counter is not None and config.records:
                time.sleep(WORKER_WAKE_S)  # blocks the main thread, so the worker gets the GIL
                if config.counter.spans == 0:
                    asleep.append(config.name)
            self.deactivate(config)
            config.flush()
            self._between_blocks()
        return asleep

    def timed_block(self, config: Config, calls: int) -> None:
        exported_before = config.counter.spans if config.counter else 0
        calls = self._calls(config, calls)
        self.activate(config)
        process_cpu_ns = time.process_time_ns()  # every thread: the program's and the export workers'
        GC_METER.config = config
        wall, cpu, last = run_block(self.work_for(config), calls)
        GC_METER.config = None
        flush_s = config.flush()
        process_cpu_ns = time.process_time_ns() - process_cpu_ns
        self.deactivate(config)
        if config.name != "sdk_floor" and last.answer != ANSWER:  # instrumentation must not change results
            raise RuntimeError(f"pipeline answered {last.answer!r} under {config.name}")
        self._between_blocks()
        config.per_call_ns.extend(wall)
        config.per_call_cpu_ns.extend(cpu)
        config.block_medians.append(statistics.median(wall) / 1e3)
        config.block_cpu_medians.append(statistics.median(cpu) / 1e3)
        config.block_amortized.append((sum(wall) / 1e3 + flush_s * 1e6) / calls)
        config.block_total_cpu.append(process_cpu_ns / 1e3 / calls)
        if config.counter is not None:
            config.spans_per_call.append((config.counter.spans - exported_before) / calls)

    def run(self, rounds: int, calls: int, seed: int, progress: bool) -> None:
        rng = random.Random(seed)
        for round_no in range(rounds):
            order = list(self.configs)
            rng.shuffle(order)
            for config in order:
                self.timed_block(config, calls)
            if progress:
                print(f"\r  round {round_no + 1}/{rounds}", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Numbers


@dataclass
class Row:
    name: str
    calls: int
    median_us: float
    block_min: float
    block_max: float
    overhead: tuple[float, float, float] | None = None  # paired per round: median, min, max (µs)
    ratio: tuple[float, float, float] | None = None
    cpu_overhead: float | None = None
    amortized_us: float = 0.0
    total_cpu_us: float = 0.0  # CPU of all threads per call, flush included (median over blocks)
    total_cpu_overhead: float | None = None  # the same, paired per round against base
    spans_per_call: float | None = None
    spans_exact: bool = True
    gc_per_1k_calls: float = 0.0  # garbage collections on the program's thread per 1,000 timed calls
    gc_us_per_call: float = 0.0  # their CPU time per call

    @property
    def overhead_per_span(self) -> float | None:
        if self.overhead is None or not self.spans_per_call:
            return None
        return self.overhead[0] / self.spans_per_call


def _med_min_max(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def summarize(config: Config, base: Config) -> Row:
    row = Row(config.name, len(config.per_call_ns), statistics.median(config.per_call_ns) / 1e3,
              min(config.block_medians), max(config.block_medians),
              amortized_us=statistics.median(config.block_amortized),
              total_cpu_us=statistics.median(config.block_total_cpu),
              gc_per_1k_calls=config.gc_collections * 1000 / len(config.per_call_ns),
              gc_us_per_call=config.gc_ns / 1e3 / len(config.per_call_ns))
    if config is not base:
        # One block of each configuration per round: the lists pair up round by round.
        row.overhead = _med_min_max([c - b for c, b in zip(config.block_medians, base.block_medians, strict=True)])
        row.ratio = _med_min_max([c / b for c, b in zip(config.block_medians, base.block_medians, strict=True)])
        row.cpu_overhead = statistics.median([c - b for c, b in zip(config.block_cpu_medians,
                                                                     base.block_cpu_medians, strict=True)])
        row.total_cpu_overhead = statistics.median([c - b for c, b in zip(config.block_total_cpu,
                                                                           base.block_total_cpu, strict=True)])
    if config.spans_per_call:
        row.spans_per_call = statistics.median(config.spans_per_call)
        row.spans_exact = len(set(config.spans_per_call)) == 1 and row.spans_per_call.is_integer()
    return row


def sdk_span_cost(floor: Config, tree_size: int) -> tuple[float, float, float]:
    """µs per span: median over all trees, and the min-max of the block medians."""
    return (statistics.median(floor.per_call_ns) / 1e3 / tree_size, min(floor.block_medians) / tree_size,
            max(floor.block_medians) / tree_size)


def _fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_table(rows: list[Row], sdk_us: tuple[float, float, float], tree_size: int, trees: int) -> None:
    header = ["config", "calls", "µs/call median (block min-max)", "overhead µs vs base (paired median; min-max)",
              "ratio vs base", "spans/call", "overhead µs/span", "x bare SDK span"]
    lines = [header]
    for row in rows:
        per_span = row.overhead_per_span
        lines.append([
            row.name, f"{row.calls:,}", f"{row.median_us:,.0f} ({row.block_min:,.0f}-{row.block_max:,.0f})",
            "-" if row.overhead is None else
            f"{row.overhead[0]:+,.0f} ({row.overhead[1]:+,.0f} to {row.overhead[2]:+,.0f})",
            "1.00x" if row.ratio is None else f"{row.ratio[0]:.2f}x ({row.ratio[1]:.2f}-{row.ratio[2]:.2f})",
            "-" if row.spans_per_call is None else
            (f"{row.spans_per_call:.0f}" if row.spans_exact else f"{row.spans_per_call:.2f} (varies!)"),
            _fmt(per_span, ".1f"), _fmt(None if per_span is None else per_span / sdk_us[0], ".1f", "x"),
        ])
    _print_markdown(lines)
    print(f"\nbare OTel SDK span (start_span + attach/detach, BatchSpanProcessor(no-op); {trees:,} trees of "
          f"{tree_size} empty spans): {sdk_us[0]:.2f} µs/span (block medians {sdk_us[1]:.2f}-{sdk_us[2]:.2f}); "
          f"{sdk_us[0] * tree_size:.0f} µs per tree")


def print_cross_checks(rows: list[Row]) -> None:
    lines = [["config", "main-thread CPU overhead µs (paired median)", "amortized µs/call incl. flush",
              "total CPU µs/call, all threads incl. flush", "total CPU overhead µs (paired median)",
              "GC runs per 1k calls (program thread)", "GC µs/call"]]
    for row in rows:
        lines.append([row.name, _fmt(row.cpu_overhead, "+,.0f"), f"{row.amortized_us:,.0f}",
                      f"{row.total_cpu_us:,.0f}", _fmt(row.total_cpu_overhead, "+,.0f"),
                      f"{row.gc_per_1k_calls:,.0f}", f"{row.gc_us_per_call:,.1f}"])
    _print_markdown(lines)


def _print_markdown(lines: list[list[str]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for n, line in enumerate(lines):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def _ratio_check(name: str, numerator: Row | None, denominator: Row | None, limit: float,
                 limit_text: str) -> tuple[bool | None, float | None]:
    """Print one goal line, `numerator / denominator` of paired overhead per call against `limit`."""
    if numerator is None or denominator is None or not numerator.overhead or not denominator.overhead:
        print(f"  [{verdict(None)}] {name} <= {limit_text}: not measured")
        return None, None
    ratio = numerator.overhead[0] / denominator.overhead[0]
    ok = ratio <= limit
    print(f"  [{verdict(ok)}] {name} = {numerator.overhead[0]:+,.0f} / {denominator.overhead[0]:+,.0f} µs per call "
          f"= {ratio:.2f} (goal <= {limit_text})")
    return ok, ratio


def goal_checks(rows: dict[str, Row], sdk_us: float) -> list[bool | None]:
    noop, read = rows.get("lmscope_noop"), rows.get("lmscope_read")
    print("\nGoal checks (program-thread overhead per call, paired per round against base)")
    oi_ok, _ = _ratio_check("lmscope_noop / openinference", noop, rows.get("openinference"), GOAL_OI_FRACTION,
                            f"{GOAL_OI_FRACTION:.2f} = 1/{1 / GOAL_OI_FRACTION:g}")
    sdk_ok, _ = _ratio_check("lmscope_noop / sdk_in_dspy", noop, rows.get("sdk_in_dspy"), GOAL_SDK_IN_DSPY_MULTIPLE,
                             f"{GOAL_SDK_IN_DSPY_MULTIPLE:.2f}")
    values, sdk = rows.get("sdk_values_in_dspy"), rows.get("sdk_in_dspy")
    if noop is not None and values is not None and sdk is not None and noop.overhead and values.overhead \
            and sdk.overhead:
        # Not a goal: how the bill splits between what the span contract stores and the code that builds it.
        stored = values.overhead[0] - sdk.overhead[0]
        print(f"  split (no goal): the SDK storing lmscope's values costs {stored:+,.0f} µs per call "
              f"(sdk_values_in_dspy - sdk_in_dspy); lmscope's own code {noop.overhead[0] - values.overhead[0]:+,.0f} "
              f"µs (lmscope_noop - sdk_values_in_dspy); lmscope_noop / sdk_values_in_dspy = "
              f"{noop.overhead[0] / values.overhead[0]:.2f}")
    oi = rows.get("openinference")
    if values is not None and sdk is not None and oi is not None and values.overhead and sdk.overhead \
            and oi.overhead:
        # Not a goal: the lowest either ratio can be for code that stores these values through the public SDK API.
        print(f"  floor (no goal): sdk_values_in_dspy / openinference = {values.overhead[0] / oi.overhead[0]:.2f}, "
              f"sdk_values_in_dspy / sdk_in_dspy = {values.overhead[0] / sdk.overhead[0]:.2f}: the SDK alone storing "
              "lmscope's values at its places, with none of lmscope's code")
    if read is not None and read.total_cpu_overhead is not None and read.overhead and read.spans_per_call:
        # The whole bill: the program thread plus the export thread reading every attribute, flush included.
        per_span = read.total_cpu_overhead / read.spans_per_call
        print(f"  total CPU (lmscope_read: program + export thread, an exporter reading every attribute): "
              f"{read.total_cpu_overhead:+,.0f} µs per call over base ({read.overhead[0]:+,.0f} on the program "
              f"thread), {per_span:.1f} µs/span = {per_span / sdk_us:.1f}x the bare SDK span")
    return [oi_ok, sdk_ok]


# --------------------------------------------------------------------------------------------------
# Fresh-process measurements: import time, start-up and peak RSS


_REPORT = ("import json, sys\n"
           "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
           "print('BENCH' + json.dumps({'hwm_kb': hwm, 'dspy': 'dspy' in sys.modules, "
           "'litellm': 'litellm' in sys.modules, 'modules': len(sys.modules), **extra}))\n")

IMPORT_PROBE = ("import time\nt0 = time.perf_counter()\nimport lmscope\n"
                "extra = {'import_s': time.perf_counter() - t0}\n" + _REPORT)
APP_PLAIN = "import dspy\nextra = {}\n" + _REPORT
APP_INSTRUMENTED = ("import dspy, lmscope\nhandle = lmscope.instrument(exporters=['none'])\n"
                    "extra = {'instrumented': bool(getattr(getattr(handle, 'dspy', None), 'is_instrumented', True))}\n"
                    + _REPORT)


def run_probe(code: str, cwd: str) -> dict[str, Any]:
    """One fresh interpreter; wall seconds of the whole process, plus what it reported about itself."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    line = next((text for text in proc.stdout.splitlines() if text.startswith("BENCH")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return {"wall_s": wall, **json.loads(line[len("BENCH"):])}


def probe_round_robin(probes: dict[str, str], runs: int) -> dict[str, list[dict[str, Any]]]:
    # A temp cwd, so `-c`'s sys.path[0] cannot pick up a checkout; one discarded pass warms the page cache.
    cwd = _WORKDIR.name
    for code in probes.values():
        run_probe(code, cwd)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in probes}
    for _ in range(runs):
        for name, code in probes.items():
            results[name].append(run_probe(code, cwd))
    return results


def _errors(results: list[dict[str, Any]]) -> str | None:
    return next((r["error"] for r in results if "error" in r), None)


def measure_fresh_processes(runs: int) -> dict[str, Any]:
    out = probe_round_robin({"import": IMPORT_PROBE, "plain": APP_PLAIN, "instrumented": APP_INSTRUMENTED}, runs)
    summary: dict[str, Any] = {"runs": runs}
    print(f"\nFresh processes (median of {runs}, round-robin after one discarded pass)")

    if (error := _errors(out["import"])) is not None:
        print(f"  [n/a ] import lmscope failed: {error}")
        summary["import_ok"] = None
    else:
        import_s = statistics.median(r["import_s"] for r in out["import"])
        pulled = [m for m in ("dspy", "litellm") if any(r[m] for r in out["import"])]
        ok = import_s < GOAL_IMPORT_S and not pulled
        summary.update(import_s=import_s, import_pulled=pulled, import_ok=ok,
                       import_modules=statistics.median(r["modules"] for r in out["import"]))
        print(f"  [{verdict(ok)}] import lmscope: {import_s * 1e3:.0f} ms "
              f"(min-max {min(r['import_s'] for r in out['import']) * 1e3:.0f}-"
              f"{max(r['import_s'] for r in out['import']) * 1e3:.0f}; goal < {GOAL_IMPORT_S * 1e3:.0f} ms); "
              f"{summary['import_modules']:.0f} modules loaded; imported dspy: {'dspy' in pulled}, "
              f"litellm: {'litellm' in pulled} (must be False)")

    if (error := _errors(out["plain"]) or _errors(out["instrumented"])) is not None:
        print(f"  [n/a ] start-up probe failed: {error}")
        summary["startup_ok"] = None
        return summary
    plain_s = statistics.median(r["wall_s"] for r in out["plain"])
    inst_s = statistics.median(r["wall_s"] for r in out["instrumented"])
    plain_mb = statistics.median(r["hwm_kb"] for r in out["plain"]) / 1024
    inst_mb = statistics.median(r["hwm_kb"] for r in out["instrumented"]) / 1024
    litellm = any(r["litellm"] for r in out["instrumented"])
    instrumented = all(r.get("instrumented") for r in out["instrumented"])
    ok = inst_s - plain_s <= GOAL_STARTUP_S and inst_mb - plain_mb <= GOAL_STARTUP_MB and not litellm
    summary.update(plain_s=plain_s, inst_s=inst_s, plain_mb=plain_mb, inst_mb=inst_mb, startup_litellm=litellm,
                   startup_ok=ok)
    print(f"  python -c 'import dspy'                                           "
          f"{plain_s:.3f} s, peak RSS {plain_mb:.1f} MB")
    print(f"  python -c 'import dspy, lmscope; lmscope.instrument(exporters=[\"none\"])' "
          f"{inst_s:.3f} s, peak RSS {inst_mb:.1f} MB (DSPy patched: {instrumented})")
    print(f"  [{verdict(ok)}] instrumenting costs {inst_s - plain_s:+.3f} s and {inst_mb - plain_mb:+.1f} MB "
          f"(goal <= +{GOAL_STARTUP_S} s, <= +{GOAL_STARTUP_MB:.0f} MB); litellm imported: {litellm} (must be False)")
    return summary


# --------------------------------------------------------------------------------------------------
# Profile (for the owner, when a goal fails)


def lmscope_roots() -> list[str]:
    import lmscope
    import lmscope.instrumentation
    import lmscope.telemetry

    return [os.path.dirname(os.path.realpath(m.__file__)) + os.sep
            for m in (lmscope, lmscope.telemetry, lmscope.instrumentation)]


def profile_lmscope(bench: Bench, config: Config, calls: int, top: int = 15) -> None:
    """cProfile of lmscope_noop: where lmscope's overhead goes, for the owner of the code."""
    stats = _profile_calls(bench, config, calls)
    roots = tuple(lmscope_roots())
    repo = os.path.commonpath(roots)

    def ours(filename: str) -> bool:
        return os.path.realpath(filename).startswith(roots)

    def label(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        where = os.path.relpath(os.path.realpath(filename), repo) if ours(filename) else filename
        return f"{where}:{line}({func})" if line else func

    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    own = [(tt, nc, ct, key) for key, (_cc, nc, tt, ct, _callers) in stats.items() if ours(key[0])]
    share = sum(tt for tt, *_ in own) / total if total else 0.0
    print(f"\ncProfile of lmscope_noop, {calls} calls (µs per pipeline call; cProfile inflates absolute times, "
          f"compare shares). lmscope's own files hold {share:.0%} of all self time.")
    print(f"Top {top} by tottime in lmscope's files:")
    print(f"  {'tottime':>8} {'cumtime':>8} {'ncalls/call':>11}  function")
    for tt, nc, ct, key in sorted(own, reverse=True)[:top]:
        print(f"  {tt / calls * 1e6:8.1f} {ct / calls * 1e6:8.1f} {nc / calls:11.1f}  {label(key)}")

    # What lmscope's functions spend in code that is not theirs (json, the OTel SDK, ...), leaving out
    # the DSPy originals they wrap, whose time is the program's own.
    spent: dict[tuple[str, int, str], list[float]] = {}
    for key, (_cc, _nc, _tt, _ct, callers) in stats.items():
        if ours(key[0]) or f"{os.sep}dspy{os.sep}" in key[0]:
            continue
        for caller, (_ccc, nc, _ttt, ct) in callers.items():
            if ours(caller[0]):
                entry = spent.setdefault(key, [0.0, 0.0])
                entry[0] += ct
                entry[1] += nc
    print(f"Top {top} callees outside lmscope, by cumulative time when called from lmscope's files:")
    print(f"  {'cumtime':>8} {'ncalls/call':>11}  function")
    for key, (ct, nc) in sorted(spent.items(), key=lambda item: -item[1][0])[:top]:
        print(f"  {ct / calls * 1e6:8.1f} {nc / calls:11.1f}  {label(key)}")


def _profile_calls(bench: Bench, config: Config, calls: int) -> dict[Any, Any]:
    bench.activate(config)
    work = bench.work_for(config)
    run_block(work, WARMUP_CALLS)
    config.flush()
    profiler = cProfile.Profile()
    for i in range(calls):
        profiler.enable()
        work(i)
        profiler.disable()
        if i % 50 == 49:
            config.flush()  # unprofiled; keeps the 2048-span queue from overflowing (see WORKER_WAKE_S)
    bench.deactivate(config)
    config.flush()
    return pstats.Stats(profiler).stats  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------


def machine_note() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{p} {_version(p)}" for p in ("dspy", "opentelemetry-sdk",
                                                       "openinference-instrumentation-dspy", "lmscope"))
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} x {cpu}; load avg "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}; {versions}")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def add_block_arguments(parser: argparse.ArgumentParser, quick_note: str) -> None:
    """The options every interleaved-blocks benchmark takes: --calls, --rounds, --quick, --seed, --json."""
    parser.add_argument("--calls", type=int, help="timed calls per block (default 50; --quick 25)")
    parser.add_argument("--rounds", type=int, help="rounds; one block per configuration each (default 60; --quick 12)")
    parser.add_argument("--quick", action="store_true", help=quick_note)
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed for the block order")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")


def parse_block_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    args.calls = args.calls or (25 if args.quick else 50)
    args.rounds = args.rounds or (12 if args.quick else 60)
    return args


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_block_arguments(parser, "a smaller run, under a minute")
    parser.add_argument("--profile", action="store_true", help="always print the lmscope_noop cProfile hot spots")
    parser.add_argument("--decompose", action="store_true",
                        help="also measure lmscope with capture_content=False, with an ALWAYS_OFF sampler, "
                        "and its metrics with exemplars")
    parser.add_argument("--no-subprocess", action="store_true", help="skip the import/start-up measurements")
    return parse_block_arguments(parser, argv)


def build_configs(program: Any, snapshot: DSPySnapshot, decompose: bool) -> tuple[list[Config], SpanNode, str]:
    shape, shape_source, values = capture_lmscope_spans(program, snapshot)
    configs = [
        base_config(),
        lmscope_config("lmscope_noop", "lmscope DSPyInstrumentor -> lmscope's provider + batch processor(no-op)",
                       lambda: None),
        lmscope_config("lmscope_file", "lmscope DSPyInstrumentor -> lmscope's provider + batch processor"
                       "(OtlpJsonFileExporter)", lambda: file_exporter(SPANS_FILE)),
        lmscope_config("lmscope_read", "lmscope DSPyInstrumentor -> lmscope's provider + batch processor(exporter "
                       "reading every attribute)", AttributeReadingExporter),
        lmscope_config("lmscope_metrics", "lmscope_noop + lmscope's metric instruments (SDK MeterProvider)",
                       lambda: None, metrics=True),
        openinference_config(snapshot),
        sdk_in_dspy_config(),
        *([sdk_in_dspy_config(values)] if values else []),
        sdk_floor_config(shape),
    ]
    if decompose:  # where lmscope_noop's overhead goes: content serialization, everything but recording; exemplars
        configs += [
            lmscope_config("lmscope_nocontent", "lmscope_noop with capture_content=False", lambda: None,
                           capture_content=False),
            lmscope_config("lmscope_in_call", "lmscope DSPyInstrumentor -> an app's SDK provider + "
                           "BatchSpanProcessor(no-op): content built in the call", lambda: None, in_call=True),
            lmscope_config("lmscope_unsampled", "lmscope_noop on a provider with sampler=ALWAYS_OFF", lambda: None,
                           sampler=ALWAYS_OFF),
            lmscope_config("lmscope_metrics_exemplars", "lmscope_metrics as with an OTLP/console metrics exporter "
                           "(an exemplar sampled per measurement)", lambda: None, metrics=True, exemplars=True),
        ]
    return configs, shape, shape_source


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"lmscope overhead benchmark — {machine_note()}")

    lm = make_lm()
    dspy.configure(lm=lm)
    program = make_program()
    import_patched_dspy_modules()
    program(question=QUESTIONS[0])  # let DSPy finish its own lazy imports before the snapshot
    snapshot = DSPySnapshot()

    configs, shape, shape_source = build_configs(program, snapshot, args.decompose)
    for config in configs:
        note = f"SKIPPED ({config.skipped})" if config.skipped else config.describe
        print(f"  {config.name:<14} {note}")
    floor = next(c for c in configs if c.name == "sdk_floor")
    bench = Bench(program, lm, snapshot, configs,
                  make_span_tree_runner(floor.provider.get_tracer("bench-floor"), shape), shape.size())
    print(f"  span tree for the SDK floor: {shape.size()} spans ({shape_source})")
    print(f"  {args.rounds} rounds x {args.calls} calls per configuration = {args.rounds * args.calls:,} timed calls "
          f"each, after {WARMUP_CALLS} warm-up calls; blocks shuffled per round (seed {args.seed}); GC on\n")

    asleep = bench.warm_up(WARMUP_CALLS)
    if asleep:
        print(f"WARNING: the BatchSpanProcessor worker of {asleep} had not exported after warm-up; "
              "their blocks may not be in steady state")
    bench.run(args.rounds, args.calls, args.seed, progress=sys.stderr.isatty())

    base = next(c for c in bench.configs if c.name == "base")
    rows = [summarize(c, base) for c in bench.configs if c.name != "sdk_floor"]
    sdk_us = sdk_span_cost(floor, shape.size())
    print_table(rows, sdk_us, shape.size(), len(floor.per_call_ns))
    print("\nCross-checks (main-thread CPU is insensitive to other tenants; amortized and total CPU include the "
          "force_flush after each block, where the exporters do their work)")
    print_cross_checks(rows)
    report_restores(bench.configs, blocks=args.rounds + 1)
    if floor.spans_per_call and set(floor.spans_per_call) != {float(shape.size())}:
        print(f"\nWARNING: SDK floor exported {set(floor.spans_per_call)} spans per tree, expected {shape.size()}")

    by_name = {row.name: row for row in rows}
    goals = goal_checks(by_name, sdk_us[0])
    fresh = {} if args.no_subprocess else measure_fresh_processes(SUBPROCESS_RUNS)

    noop = next((c for c in bench.configs if c.name == "lmscope_noop"), None)
    if noop is not None and (args.profile or False in goals):
        profile_lmscope(bench, noop, calls=300)
    for config in bench.configs:
        if config.provider is not None:
            config.provider.shutdown()
    check_spans_file(bench.configs)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    if args.json:
        write_json(args.json, rows, sdk_us, shape.size(), goals, fresh, args)
    return 0


def report_restores(configs: list[Config], blocks: int) -> None:
    for config in configs:
        names = sorted(set(config.restored_after_off))
        if config.name == "openinference":
            print(f"\nOpenInference workaround: after each of its {blocks} uninstruments the bench restored "
                  f"{len(config.restored_after_off) / blocks:g} DSPy entries its unwrap had broken: {', '.join(names)}")
        elif names:
            print(f"\nWARNING: {config.name}'s uninstrument left {names} patched; the bench restored them")


def check_spans_file(configs: list[Config]) -> None:
    """Every span the file configuration exported must be in the file (after shutdown closed it)."""
    config = next((c for c in configs if c.name == "lmscope_file"), None)
    if config is None or config.counter is None:
        return
    written = spans_in_otlp_file(SPANS_FILE) if os.path.exists(SPANS_FILE) else 0
    size_mb = os.path.getsize(SPANS_FILE) / 2**20 if os.path.exists(SPANS_FILE) else 0.0
    state = "OK" if written == config.counter.spans else "MISMATCH"
    print(f"\nlmscope_file: {written:,} spans in the OTLP/JSON file ({size_mb:.1f} MB), "
          f"{config.counter.spans:,} handed to the exporter: {state}")


def write_json(path: str, rows: list[Row], sdk_us: tuple[float, float, float], tree_size: int,
               goals: list[bool | None], fresh: dict[str, Any], args: argparse.Namespace) -> None:
    data = {"machine": machine_note(), "rounds": args.rounds, "calls": args.calls,
            "rows": [{**vars(r), "overhead_per_span": r.overhead_per_span} for r in rows],
            "sdk_us_per_span": sdk_us, "tree_size": tree_size,
            "goals": {"vs_openinference": goals[0], "vs_sdk_in_dspy": goals[1]}, "fresh_processes": fresh}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
