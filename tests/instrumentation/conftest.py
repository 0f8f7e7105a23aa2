"""DSPy instrumented against an in-memory exporter, on both DSPy engines."""

from __future__ import annotations

import uuid

import pytest
from dspy_release import ENGINES, engine_options


def _instrumented(**listeners):
    """DSPy instrumented with its own TracerProvider; yields the in-memory span exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True, **listeners)
    yield exporter
    instrumentor.uninstrument()
    _reset_dspy()


@pytest.fixture
def spans():
    """Instrument DSPy with its own TracerProvider; yields a function returning the finished spans."""
    for exporter in _instrumented():
        yield exporter.get_finished_spans


@pytest.fixture
def litellm_spans(lm_server):
    """LiteLLM instrumented with its own TracerProvider; yields a function returning the finished spans (its
    `tracer` attribute: a tracer for the app's own spans)."""
    import litellm
    from memory_spans import memory_provider
    from openai import _base_client

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    provider, exporter = memory_provider()
    instrumentor = LiteLLMInstrumentor()

    def targets():
        """Put back exactly at the end: module functions, the retry helpers, the Router's endpoints and the OpenAI
        SDK's wait between a failed request and the next."""
        return (*(getattr(litellm, name) for name in ("completion", "responses", "completion_with_retries")),
                litellm.Router.completion, litellm.Router.aembedding, _base_client.SyncAPIClient._sleep_for_retry,
                _base_client.AsyncAPIClient._sleep_for_retry)

    originals = targets()
    instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    assert all(now is not before for now, before in zip(targets(), originals, strict=True))

    def finished():
        return exporter.get_finished_spans()

    finished.tracer = provider.get_tracer("app")
    yield finished
    instrumentor.uninstrument()
    assert targets() == originals


@pytest.fixture
def traced(lm_server):
    """`traced(policy)`: instrument DSPy with that `ContentPolicy`; returns the finished-spans function. The stand-in
    server keeps the request bodies it receives in `lm_server.recorded_bodies` (parsed: `lm_server.received`) meanwhile."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    instrumentor = DSPyInstrumentor()

    def instrument(policy):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrumentor.instrument(provider.get_tracer("test"), capture_content=policy)
        return exporter.get_finished_spans

    lm_server.recorded_bodies = []
    yield instrument
    lm_server.recorded_bodies = None
    instrumentor.uninstrument()
    _reset_dspy()


@pytest.fixture
def dspy_and_litellm():
    """DSPy and LiteLLM instrumented on one TracerProvider, as `lmscope.instrument()` does; yields the finished-spans
    function."""
    from memory_spans import memory_provider

    from lmscope.instrumentation.dspy import DSPyInstrumentor
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    provider, exporter = memory_provider()
    tracer = provider.get_tracer("test")
    instrumentors = (DSPyInstrumentor(), LiteLLMInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer=tracer, capture_content=True)
    yield exporter.get_finished_spans
    for instrumentor in reversed(instrumentors):
        instrumentor.uninstrument()
    _reset_dspy()


@pytest.fixture
def metered():
    """`spans` plus lmscope's metric instruments on a MeterProvider with an InMemoryMetricReader, fed by the
    same hooks `lmscope.instrument()` uses; yields (the finished-spans function, the reader)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.telemetry._metrics import MetricsRecorder

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    recorder = MetricsRecorder(provider.get_meter("lmscope"))
    for exporter in _instrumented(lm_call_listeners=[recorder.record_lm_call],
                                  module_listeners=[recorder.record_module],
                                  evaluation_listeners=[recorder.record_evaluation]):
        yield exporter.get_finished_spans, reader
    provider.shutdown()


def _reset_dspy():
    import dspy

    dspy.configure(lm=None, adapter=None, track_usage=False, callbacks=[])


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def make_lm(lm_server, engine):
    """`make_lm(**kwargs)`: a dspy.LM on the stand-in server with the parametrized engine (`model`: another model
    string than `openai/gpt-4o-mini`).

    DSPy's cache is shared by the whole session (one DSPY_CACHEDIR), so a test that needs a cold cache
    asks a question with the `unique` suffix.
    """
    import dspy

    def make(model="openai/gpt-4o-mini", **kwargs):
        options = {"api_base": lm_server.base_url, "api_key": "sk-test-SECRET-123", **engine_options(engine)}
        options.update(kwargs)
        return dspy.LM(model, **options)

    return make


@pytest.fixture
def unique():
    """A suffix that keeps a question out of every earlier test's cache entries."""
    return uuid.uuid4().hex[:8]


CORPUS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Tokyo is the capital of Japan."]


def _fixed_passages(query):
    """Retrieval that ignores the query: the LM sees the same prompts whatever the rewrite step returned."""
    return CORPUS[:2]


@pytest.fixture
def rag():
    """A fresh 3-step program (lmscope._demo.build_program): rewrite (Predict) -> retrieve (Retriever module)
    -> answer (ChainOfThought), retrieving CORPUS[:2] for every query."""
    from lmscope._demo import build_program

    return build_program(retrieve=_fixed_passages)


def _tree(finished):
    """Nested (name, [children]) lists, children in start order: the shape a backend would draw."""
    children = {}
    ids = {span.context.span_id for span in finished}
    roots = []
    for span in sorted(finished, key=lambda s: s.start_time):
        parent = span.parent.span_id if span.parent is not None else None
        (children.setdefault(parent, []) if parent in ids else roots).append(span)

    def node(span):
        return (span.name, [node(child) for child in children.get(span.context.span_id, [])])

    return [node(root) for root in roots]


@pytest.fixture
def tree():
    return _tree


@pytest.fixture
def rag_tree():
    """The span tree one call of the `rag` program must produce."""
    return ("rag", [
        ("rag.rewrite", [("chat gpt-4o-mini", [])]),
        ("rag.retrieve", []),
        ("rag.answer", [("rag.answer.predict", [("chat gpt-4o-mini", [])])]),
    ])
