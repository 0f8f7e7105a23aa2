"""Settings that describe the call: the LM span names the LM that made it, and every binding of `dspy.context`
(even one taken before `instrument()`) records its overrides."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from dspy_release import engine_options

from lmscope.instrumentation._thread_pools import carry_context_into_thread_pools
from lmscope.telemetry import _semconv as semconv

MODEL = "lmscope.settings.lm.model"
GLOBAL, OTHER = "openai/gpt-4o-mini", "openai/gpt-4o"


@pytest.fixture
def lm_named(lm_server, engine):
    """`lm_named(model)`: a dspy.LM for `model` on the stand-in server with the parametrized engine."""

    def make(model):
        options = {"api_base": lm_server.base_url, "api_key": "sk-test-SECRET-123", **engine_options(engine)}
        return dspy.LM(model, **options)

    return make


def _lm_spans(finished):
    return [s for s in finished if s.name.startswith(semconv.LM_SPAN_NAME_PREFIX)]


def _root(finished):
    (root,) = [s for s in finished if s.parent is None]
    return root


@pytest.mark.parametrize("way", ["global", "set_lm", "call_kwarg", "context"])
def test_lm_span_settings_name_the_lm_that_made_the_call(spans, lm_named, unique, way):
    dspy.configure(lm=lm_named(GLOBAL))
    other = lm_named(OTHER)
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of France? {way} {unique}"
    if way == "global":
        predict(question=question)
    elif way == "set_lm":
        predict.set_lm(other)
        predict(question=question)
    elif way == "call_kwarg":
        predict(question=question, lm=other)
    else:
        with dspy.context(lm=other):
            predict(question=question)

    finished = spans()
    (lm_span,) = _lm_spans(finished)
    expected = GLOBAL if way == "global" else OTHER
    assert lm_span.name == semconv.LM_SPAN_NAME_PREFIX + expected.split("/")[1]
    assert lm_span.attributes[MODEL] == expected
    # The root module span keeps describing the effective settings: the global LM, or the context's.
    assert _root(finished).attributes[MODEL] == (OTHER if way == "context" else GLOBAL)
    for span in (lm_span, _root(finished)):
        if way == "context":
            assert span.attributes[semconv.SETTINGS_OVERRIDES] == ("lm",)
        else:
            assert semconv.SETTINGS_OVERRIDES not in span.attributes


def test_lm_span_cache_setting_is_the_calling_lms(spans, lm_named, unique):
    dspy.configure(lm=lm_named(GLOBAL))
    uncached = lm_named(OTHER)
    uncached.cache = False
    dspy.Predict("question -> answer")(question=f"Capital of Japan? {unique}", lm=uncached)

    (lm_span,) = _lm_spans(spans())
    assert lm_span.attributes[MODEL] == OTHER
    assert lm_span.attributes["lmscope.settings.cache"] is False


def _instrument():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    return instrumentor, exporter


def test_context_bound_before_instrument_records_overrides(lm_named, unique):
    from dspy import context  # bound before lmscope instruments, as in a user's module
    from dspy.dsp.utils.settings import Settings

    bound_context = dspy.context
    helper = vars(Settings)["context"]
    generator = helper.__closure__[0].cell_contents
    instrumentor, exporter = _instrument()
    try:
        dspy.configure(lm=lm_named(GLOBAL))
        predict = dspy.Predict("question -> answer")
        with context(temperature=0.3):
            predict(question=f"Capital of Germany? {unique}")
        with bound_context(lm=lm_named(OTHER)):
            predict(question=f"Capital of Italy? {unique}")

        @context(max_errors=3)
        def decorated(question):
            return predict(question=question)

        decorated(f"Capital of Spain? {unique}")
        decorated(f"Capital of Spain again? {unique}")
        with context(temperature=0.3):  # an exception leaves both DSPy's settings and the recorded overrides
            with pytest.raises(KeyError), bound_context(track_usage=True):
                raise KeyError("boom")
            predict(question=f"Capital of Portugal? {unique}")

        first, second, third, fourth, fifth = sorted(_lm_spans(exporter.get_finished_spans()),
                                                     key=lambda s: s.start_time)
        assert first.attributes[semconv.SETTINGS_OVERRIDES] == ("temperature",)
        assert first.attributes["lmscope.settings.temperature"] == 0.3
        assert second.attributes[semconv.SETTINGS_OVERRIDES] == ("lm",)
        assert second.attributes[MODEL] == OTHER
        for span in (third, fourth):
            assert span.attributes[semconv.SETTINGS_OVERRIDES] == ("max_errors",)
            assert span.attributes["lmscope.settings.max_errors"] == 3
        assert fifth.attributes[semconv.SETTINGS_OVERRIDES] == ("temperature",)
        assert dspy.settings.track_usage is False
    finally:
        instrumentor.uninstrument()
        dspy.configure(lm=None, adapter=None, track_usage=False, callbacks=[])

    # Uninstrument puts back the very objects it found; the early bindings are DSPy's own again.
    assert vars(Settings)["context"] is helper
    assert helper.__closure__[0].cell_contents is generator
    assert dspy.context is bound_context
    assert context.__func__ is helper
    with context(temperature=0.1):
        assert dspy.settings.temperature == 0.1


def test_context_patch_declines_what_is_not_a_contextmanager_helper():
    from lmscope.instrumentation.dspy._settings import patch_context_generator

    def plain(self, **kwargs):
        return kwargs

    assert patch_context_generator(plain) is None
    assert patch_context_generator(None) is None


def test_a_call_on_an_apps_pool_inside_a_context_block_reports_what_dspy_applied_there(spans, lm_named, unique):
    """DSPy's `dspy.context` overrides reach its own ParallelExecutor's workers, not an app's thread pool, while the
    OpenTelemetry context lmscope carries into that pool records them: the pool's LM span reported `lm` and
    `max_errors` as overridden although the call ran on the global LM with the global settings."""
    dspy.configure(lm=lm_named(GLOBAL))
    predict = dspy.Predict("question -> answer")
    put_back = carry_context_into_thread_pools()  # what lmscope.instrument() does
    try:
        with dspy.context(lm=lm_named(OTHER), max_errors=3):
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(predict, question=f"Asked on the app's pool {unique}").result()
            predict.batch([dspy.Example(question=f"Asked in a batch {unique}").with_inputs("question")],
                          num_threads=1)
    finally:
        put_back()
    pool_span, batch_span = sorted(_lm_spans(spans()), key=lambda span: span.start_time)
    assert pool_span.attributes[MODEL] == GLOBAL
    assert semconv.SETTINGS_OVERRIDES not in pool_span.attributes
    assert pool_span.attributes["lmscope.settings.max_errors"] != 3
    assert batch_span.attributes[MODEL] == OTHER
    assert batch_span.attributes[semconv.SETTINGS_OVERRIDES] == ("lm", "max_errors")
