"""Light spans and deferred attributes change nothing an exporter sees.

The same DSPy program runs twice against the stand-in LM: once on a tracer with the SDK's default sampler,
where lmscope makes `LightSpan`s whose attributes are built when first read (telemetry/_light_span.py), and once
on a tracer whose sampler is `ALWAYS_ON` (the same decisions, but not the default sampler object), where it
falls back to the SDK's own spans and builds every attribute on the spot. Both exports must be the same trees,
with the same attributes in the same order, the same statuses and events; only ids, times and the server's
response ids differ.
"""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._light_span import LightSpan

_VARYING = {semconv.GEN_AI_RESPONSE_ID}


def traced_run(sampler: sampling.Sampler | None, program: Any, question: str,
               server: Any) -> tuple[list[Any], set[type]]:
    server.reset_prefix_cache()  # both runs see the same cached prompt tokens
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        with dspy.context(adapter=dspy.ChatAdapter()):
            program(question=question)
        with pytest.raises(ZeroDivisionError):
            program(question=question, fail=True)
    finally:
        instrumentor.uninstrument()
    finished = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in finished}
    shape = [(span.name, names.get(span.parent.span_id) if span.parent else None, span.kind,
              [(key, value) for key, value in span.attributes.items() if key not in _VARYING],
              span.status.status_code, span.status.description,
              [(event.name, event.attributes.get("exception.type")) for event in span.events])
             for span in finished]
    return shape, {type(span) for span in finished}


def test_light_spans_export_what_sdk_spans_export(make_lm, rag, unique, lm_server):
    dspy.configure(lm=make_lm(cache=False))

    class Failing(dspy.Module):
        def __init__(self):
            super().__init__()
            self.rag = rag

        def forward(self, question, fail=False):
            prediction = self.rag(question=question)
            if fail:
                raise ZeroDivisionError("after the LM calls")
            return prediction

    program = Failing()
    question = f"What is the capital of France? {unique}"
    light, light_types = traced_run(None, program, question, lm_server)
    sdk, sdk_types = traced_run(sampling.ALWAYS_ON, program, question, lm_server)
    assert light_types == {LightSpan} and LightSpan not in sdk_types  # both paths really ran
    # 2 program calls x (failing, rag, rewrite, its LM call, retrieve, answer, answer.predict, its LM call)
    assert light == sdk
    assert len(light) == 16 and any(status.name == "ERROR" for *_, status, _, _ in light)
