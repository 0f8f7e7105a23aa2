"""The span tree of a real 3-step DSPy program on both engines, with exact tokens, cost and roll-ups."""

from __future__ import annotations

import json

import dspy
import litellm
import pytest
from chat_messages import pop_messages
from dspy_release import engine_options, needs_dspy

from lmscope.telemetry import _semconv as semconv

SETTINGS = {"lmscope.settings.lm.model": "openai/gpt-4o-mini", "lmscope.settings.adapter": "ChatAdapter",
            "lmscope.settings.cache": True, "lmscope.settings.track_usage": False,
            "lmscope.settings.num_threads": 8, "lmscope.settings.max_errors": 10,
            "lmscope.settings.disable_history": False, "lmscope.settings.async_max_workers": 8}


def litellm_price(prompt: int, completion: int, cached: int) -> float:
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini", custom_llm_provider="openai", prompt_tokens=prompt, completion_tokens=completion,
        cache_read_input_tokens=cached)
    return prompt_cost + completion_cost


def test_rag_call_is_one_tree_with_exact_lm_attributes(spans, make_lm, rag, unique, engine, tree, rag_tree):
    lm = make_lm(temperature=0.2, max_tokens=500)
    dspy.configure(lm=lm)
    question = f"What is the capital of France? {unique}"

    prediction = rag(question=question)

    finished = spans()
    assert tree(finished) == [rag_tree]
    assert len({span.context.trace_id for span in finished}) == 1
    lm_spans = sorted((s for s in finished if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)
    history = lm.history[-2:]
    for span, entry in zip(lm_spans, history):
        usage = entry["usage"]
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        details = usage.get("prompt_tokens_details") or {}  # DSPy < 3.4 keeps LiteLLM's object in its history
        cached = (details.get("cached_tokens") if isinstance(details, dict) else details.cached_tokens) or 0
        attributes = dict(span.attributes)
        assert attributes.pop(semconv.GEN_AI_USAGE_INPUT_TOKENS) == prompt
        assert attributes.pop(semconv.LLM_TOKEN_COUNT_PROMPT) == prompt
        assert attributes.pop(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) == completion
        assert attributes.pop(semconv.LLM_TOKEN_COUNT_COMPLETION) == completion
        assert attributes.pop(semconv.LLM_TOKEN_COUNT_TOTAL) == prompt + completion
        assert attributes.pop(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == cached
        assert attributes.pop(semconv.LLM_TOKEN_COUNT_CACHE_READ) == cached
        cost = attributes.pop(semconv.GEN_AI_USAGE_COST)
        assert cost == pytest.approx(litellm_price(prompt, completion, cached), rel=1e-9, abs=0)
        assert attributes.pop(semconv.LLM_COST_TOTAL) == cost
        assert attributes.pop(semconv.COST_SOURCE) == ("litellm" if engine == "litellm" else "dspy")
        assert attributes.pop(semconv.CACHE_HIT) is False
        assert attributes.pop(semconv.LM_ENGINE) == engine
        assert attributes.pop(semconv.SPAN_KIND) == "LLM"
        assert attributes.pop(semconv.GEN_AI_OPERATION_NAME) == "chat"
        assert attributes.pop(semconv.GEN_AI_PROVIDER_NAME) == "openai"
        assert attributes.pop(semconv.LLM_PROVIDER) == "openai"
        assert attributes.pop(semconv.GEN_AI_REQUEST_MODEL) == "gpt-4o-mini"
        assert attributes.pop(semconv.LLM_MODEL_NAME) == "gpt-4o-mini"
        assert attributes.pop(semconv.GEN_AI_RESPONSE_MODEL) == "gpt-4o-mini"
        assert attributes.pop(semconv.GEN_AI_RESPONSE_ID) == entry["response"].id
        assert attributes.pop(semconv.GEN_AI_RESPONSE_FINISH_REASONS) == ("stop",)
        assert attributes.pop(semconv.GEN_AI_REQUEST_TEMPERATURE) == lm.kwargs["temperature"]
        assert attributes.pop(semconv.GEN_AI_REQUEST_MAX_TOKENS) == lm.kwargs["max_tokens"]
        assert json.loads(attributes.pop(semconv.LLM_INVOCATION_PARAMETERS)) == {
            "temperature": lm.kwargs["temperature"], "max_tokens": lm.kwargs["max_tokens"]}
        assert json.loads(attributes.pop(semconv.INPUT_VALUE)) == entry["messages"]
        assert attributes.pop(semconv.INPUT_MIME_TYPE) == "application/json"
        assert json.loads(attributes.pop(semconv.OUTPUT_VALUE)) == entry["outputs"]
        assert attributes.pop(semconv.OUTPUT_MIME_TYPE) == "application/json"
        pop_messages(attributes, entry["messages"], entry["outputs"])  # the chat Phoenix and Langfuse draw
        for key, value in SETTINGS.items():
            assert attributes.pop(key) == value, key
        assert attributes.pop(semconv.PHASE) == "serve"
        assert attributes == {}
        assert span.kind.name == "CLIENT"
    assert prediction.answer

    by_name = {span.name: span for span in finished if not span.name.startswith("chat")}
    rewrite_call, answer_call = (dict(s.attributes) for s in lm_spans)
    root = dict(by_name["rag"].attributes)
    assert root[semconv.SPAN_KIND] == "CHAIN"
    assert root[semconv.MODULE_CLASS] == "RAG"
    assert root[semconv.MODULE_PATH] == "rag"
    assert root[semconv.LM_CALLS] == 2
    assert root[semconv.USAGE_INPUT_TOKENS] == rewrite_call[semconv.GEN_AI_USAGE_INPUT_TOKENS] + \
        answer_call[semconv.GEN_AI_USAGE_INPUT_TOKENS]
    assert root[semconv.USAGE_OUTPUT_TOKENS] == rewrite_call[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] + \
        answer_call[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert root[semconv.COST_TOTAL_USD] == pytest.approx(
        rewrite_call[semconv.GEN_AI_USAGE_COST] + answer_call[semconv.GEN_AI_USAGE_COST], rel=1e-12)
    for key, value in SETTINGS.items():
        assert root[key] == value
    # Module spans carry no model, usage or cost keys a backend would count or price a second time.
    for span in by_name.values():
        assert not [k for k in span.attributes if k.startswith(("gen_ai.", "llm."))], span.name
    assert by_name["rag.rewrite"].attributes[semconv.MODULE_SIGNATURE] == "question -> query"
    assert by_name["rag.rewrite"].attributes[semconv.MODULE_CLASS] == "Predict"
    assert by_name["rag.answer"].attributes[semconv.MODULE_CLASS] == "ChainOfThought"
    # A ChainOfThought keeps its signature on the Predict it runs: its span shows that one too.
    assert by_name["rag.answer"].attributes[semconv.MODULE_SIGNATURE] == "context, question -> reasoning, answer"
    assert by_name["rag.answer.predict"].attributes[semconv.MODULE_SIGNATURE] == \
        "context, question -> reasoning, answer"
    assert by_name["rag.answer.predict"].attributes[semconv.LM_CALLS] == 1
    assert by_name["rag.retrieve"].attributes[semconv.SPAN_KIND] == "RETRIEVER"
    assert by_name["rag.retrieve"].attributes[semconv.LM_CALLS] == 0
    assert json.loads(by_name["rag"].attributes[semconv.INPUT_VALUE]) == {"question": question}


def test_retriever_span_lists_its_documents(spans, make_lm, rag, unique):
    dspy.configure(lm=make_lm())
    rag(question=f"Where is Berlin? {unique}")
    retrieve = next(s for s in spans() if s.name == "rag.retrieve")
    documents = {k: v for k, v in retrieve.attributes.items() if k.startswith("retrieval.documents.")}
    assert documents == {
        "retrieval.documents.0.document.id": "0",
        "retrieval.documents.0.document.content": "Paris is the capital of France.",
        "retrieval.documents.1.document.id": "1",
        "retrieval.documents.1.document.content": "Berlin is the capital of Germany.",
    }


def test_class_signature_and_compiled_flag(spans, make_lm, unique):
    class GenerateAnswer(dspy.Signature):
        """Answer the question."""

        question: str = dspy.InputField()
        answer: str = dspy.OutputField()

    dspy.configure(lm=make_lm())
    program = dspy.Predict(GenerateAnswer)
    program._compiled = True
    program(question=f"What is 2+2? {unique}")
    predict = next(s for s in spans() if s.name == "predict")
    assert predict.attributes[semconv.MODULE_SIGNATURE] == "GenerateAnswer(question -> answer)"
    assert predict.attributes[semconv.MODULE_COMPILED] is True


def test_unknown_price_is_flagged_never_zero(spans, lm_server, unique):
    lm = dspy.LM("openai/lmscope-unpriced-model", api_base=lm_server.base_url, api_key="sk-x")
    dspy.configure(lm=lm)
    dspy.Predict("question -> answer")(question=f"hi {unique}")
    finished = spans()
    call = next(s for s in finished if s.name == "chat lmscope-unpriced-model")
    assert call.attributes[semconv.COST_UNKNOWN] is True
    assert semconv.GEN_AI_USAGE_COST not in call.attributes
    assert semconv.LLM_COST_TOTAL not in call.attributes
    assert call.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == lm.history[-1]["usage"]["prompt_tokens"]
    predict = next(s for s in finished if s.name == "predict")
    assert predict.attributes[semconv.COST_UNKNOWN] is True


def test_tool_call_is_a_tool_span_under_its_module(spans, tree):
    def lookup(city: str) -> str:
        """Population of a city."""
        return f"{city}: 2.1 million"

    class Agent(dspy.Module):
        def __init__(self):
            super().__init__()
            self.tools = {"lookup": dspy.Tool(lookup)}

        def forward(self, city):
            return dspy.Prediction(answer=self.tools["lookup"](city=city))

    assert Agent()(city="Paris").answer == "Paris: 2.1 million"
    finished = spans()
    assert tree(finished) == [("agent", [("execute_tool lookup", [])])]
    tool = next(s for s in finished if s.name == "execute_tool lookup")
    assert tool.attributes[semconv.SPAN_KIND] == "TOOL"
    assert tool.attributes[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert tool.attributes[semconv.GEN_AI_TOOL_NAME] == "lookup"
    assert tool.attributes[semconv.TOOL_NAME] == "lookup"
    assert semconv.MODULE_PATH not in tool.attributes  # a tool is a step, not a module
    assert json.loads(tool.attributes[semconv.INPUT_VALUE]) == {"city": "Paris"}
    assert json.loads(tool.attributes[semconv.OUTPUT_VALUE]) == "Paris: 2.1 million"


def test_one_lm_span_even_with_openinference_litellm_instrumented(spans, lm_server, unique):
    from openinference.instrumentation.litellm import LiteLLMInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    their_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(their_spans))
    litellm_instrumentor = LiteLLMInstrumentor()
    litellm_instrumentor.instrument(tracer_provider=provider)
    try:
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x",
                                  **engine_options("litellm")))
        dspy.Predict("question -> answer")(question=f"q {unique}")
        litellm.completion(model="openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x",
                           messages=[{"role": "user", "content": f"direct {unique}"}])
    finally:
        litellm_instrumentor.uninstrument()
    assert [s.name for s in spans()] == ["chat gpt-4o-mini", "predict"]
    # OpenInference stood down inside DSPy's call but still traces LiteLLM used directly.
    assert [s.name for s in their_spans.get_finished_spans()] == ["completion"]


@pytest.mark.parametrize("agent", ["ReAct", pytest.param("ReActV2", marks=needs_dspy((3, 3), "ReActV2")), "CodeAct"])
def test_agent_modules_are_agent_spans(agent):
    from lmscope.instrumentation.dspy._naming import span_kind

    assert span_kind(getattr(dspy, agent)) == semconv.KIND_AGENT


def test_an_lm_with_its_own_call_is_one_lm_span_with_or_without_super(spans, make_lm, unique, tree):
    """An LM class that defines `__call__` (DSPy 3.0-3.2's DummyLM, a user's wrapper LM), before or after lmscope
    is set up: one LM span per call, whether or not it goes on to BaseLM's `__call__`."""
    from dspy.clients.base_lm import BaseLM

    class Canned(BaseLM):  # answers by itself, never reaching BaseLM.__call__
        def __call__(self, prompt=None, messages=None, **kwargs):
            return ["[[ ## answer ## ]]\nLima\n\n[[ ## completed ## ]]"]

    class Logged(type(make_lm())):  # adds to the LM's call and goes on to BaseLM's
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **kwargs)

    for lm in (Canned("canned"), Logged("openai/gpt-4o-mini", **vars(make_lm()).get("kwargs", {}))):
        with dspy.context(lm=lm):
            dspy.Predict("question -> answer")(question=f"Capital of Peru? {unique}")
    finished = spans()
    assert tree(finished) == [("predict", [("chat canned", [])]), ("predict", [("chat gpt-4o-mini", [])])]
    logged = next(span for span in finished if span.name == "chat gpt-4o-mini")
    assert logged.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
