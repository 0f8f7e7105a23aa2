"""LiteLLM calls made inside a DSPy LM call by code that is not DSPy's own request path: a custom `BaseLM`'s
`forward`/`aforward` or `__call__`, a DSPy 3.4 custom engine, a DSPy callback. Each is a `chat {model}` span, a child of
the DSPy LM span, counted once: when they made the LM's request, the DSPy LM span gives way (no usage of its own,
their roll-up, `lmscope.usage.in_children`); DSPy's own request (`dspy.LM`) stays the one span of its call.
Whatever the path, the spans, module roll-ups, `track()`, metrics, the console tree and `lmscope report` add up to
what the stand-in server billed (docs/dspy-internals.md §4, `instrumentation/litellm/_in_dspy_lm.py`)."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
import httpx
import litellm
import pytest
from dspy_release import ENGINES, engine_options, needs_dspy
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._metrics import MetricsRecorder
from lmscope.telemetry._report import summarize
from lmscope.telemetry._trace_file import records_from_spans
from lmscope.telemetry._tree import build_trees, is_lm_call, render_tree
from lmscope.telemetry._usage import track

LM_SPAN = "chat gpt-4o-mini"
_OWN_USAGE = (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.LLM_TOKEN_COUNT_PROMPT,
              semconv.LLM_TOKEN_COUNT_TOTAL, semconv.GEN_AI_USAGE_COST, semconv.LLM_COST_TOTAL, semconv.CACHE_HIT)


@pytest.fixture
def traced(lm_server):
    """DSPy and LiteLLM instrumented on one TracerProvider, with lmscope's metric instruments fed by both, as
    `lmscope.instrument()` sets them up; yields (the finished-spans function, the metric reader)."""
    from memory_spans import memory_provider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from lmscope.instrumentation.dspy import DSPyInstrumentor
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    recorder = MetricsRecorder(meters.get_meter("lmscope"))
    provider, exporter = memory_provider()
    instrumentors = (DSPyInstrumentor(), LiteLLMInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True,
                                lm_call_listeners=[recorder.record_lm_call])
    yield exporter.get_finished_spans, reader
    for instrumentor in reversed(instrumentors):
        instrumentor.uninstrument()
    meters.shutdown()
    dspy.configure(lm=None, adapter=None, track_usage=False, callbacks=[])


class Bill:
    """What the stand-in server answered and billed inside the block: `requests`, `tokens` (input, output)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.requests, self.tokens = 0, (0, 0)

    def __enter__(self) -> Bill:
        self._before = (self.server.requests, self.server.billed_chat_tokens)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.requests = self.server.requests - self._before[0]
        now = self.server.billed_chat_tokens
        self.tokens = (now[0] - self._before[1][0], now[1] - self._before[1][1])


def _asked_at(base_url: str, messages: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": messages, "api_base": base_url, "api_key": "sk-anything"}


def _messages(prompt: Any, messages: Any) -> Any:
    return messages or [{"role": "user", "content": prompt}]


class DraftThenAnswer(dspy.BaseLM):
    """A custom LM whose `forward` makes two LiteLLM requests, a draft and the answer, and returns the answer."""

    def __init__(self, base_url: str) -> None:
        super().__init__("openai/gpt-4o-mini")
        self.base_url = base_url
        self.sends: list[bool] = []
        """Whether instrumentation was enabled at each HTTP request its calls sent (other instrumentations')."""

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        litellm.completion(**_asked_at(self.base_url, _messages(prompt, messages)))
        return litellm.completion(**_asked_at(self.base_url, _messages(prompt, messages)))

    async def aforward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        await litellm.acompletion(**_asked_at(self.base_url, _messages(prompt, messages)))
        return await litellm.acompletion(**_asked_at(self.base_url, _messages(prompt, messages)))


class PlainText(dspy.BaseLM):
    """A custom LM of the old kind, its own `__call__`: one LiteLLM request, its answer returned as plain text."""

    def __init__(self, base_url: str) -> None:
        super().__init__("openai/gpt-4o-mini")
        self.base_url = base_url

    def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> list[str]:
        response = litellm.completion(**_asked_at(self.base_url, _messages(prompt, messages)))
        return [response.choices[0].message.content]


def _children_of(finished: Any, span: Any) -> list[Any]:
    return [child for child in finished if child.parent is not None and child.parent.span_id == span.context.span_id]


def _dspy_lm_spans(finished: Any) -> list[Any]:
    """The DSPy LM spans: LM spans with lmscope's settings on them (LiteLLM's have none)."""
    return [span for span in finished if span.attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM
            and semconv.SETTINGS_PREFIX + "lm.model" in span.attributes]


def _billed_on(spans: Any) -> tuple[int, int]:
    return (sum(span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for span in spans),
            sum(span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] for span in spans))


def _metric_totals(series: dict[str, Any]) -> dict[str, Any]:
    """(calls, input tokens, output tokens, cost) as the metrics count them."""
    tokens = series.get(semconv.METRIC_TOKEN_USAGE, {})
    by_type = {dict(key)["gen_ai.token.type"]: value for key, value in tokens.items()}
    durations = series.get(semconv.METRIC_OPERATION_DURATION, {})
    return {"calls": sum(count for count, _ in durations.values()),
            "input": by_type.get("input", (0, 0))[1], "output": by_type.get("output", (0, 0))[1],
            "cost": sum(series.get(semconv.METRIC_COST, {}).values())}


def _assert_counted_once(finished: Any, reader: Any, metric_series: Any, usage: Any, bill: Bill, calls: int) -> None:
    """`calls` LM calls, each counted once, everywhere, and the tokens the server billed: on the LM spans report and
    tree count, in `track()`, the module roll-ups and the metrics."""
    counted = [span for span in finished if is_lm_call(span.attributes)]
    assert len(counted) == calls == bill.requests
    assert _billed_on(counted) == bill.tokens
    cost = sum(span.attributes[semconv.GEN_AI_USAGE_COST] for span in counted)
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (calls, *bill.tokens)
    assert totals["cost_usd"] == pytest.approx(cost)
    report = summarize(records_from_spans(finished)).total
    assert (report.calls, report.input_tokens, report.output_tokens) == (calls, *bill.tokens)
    metrics = _metric_totals(metric_series(reader))
    assert metrics == {"calls": calls, "input": bill.tokens[0], "output": bill.tokens[1], "cost": pytest.approx(cost)}
    for module in (span for span in finished if semconv.MODULE_PATH in span.attributes):
        assert (module.attributes[semconv.LM_CALLS], module.attributes[semconv.USAGE_INPUT_TOKENS],
                module.attributes[semconv.USAGE_OUTPUT_TOKENS]) == (calls, *bill.tokens)


def _predict_with(lm: Any, server: Any, question: str, is_async: bool) -> tuple[Bill, Any]:
    """A `dspy.Predict` answering `question` with `lm` (sync or async): what the server billed, and `track()`'s usage."""
    predict = dspy.Predict("question -> answer")
    with Bill(server) as bill, track() as usage, dspy.context(lm=lm):
        answer = asyncio.run(predict.acall(question=question)) if is_async else predict(question=question)
    assert answer.answer
    return bill, usage


def _assert_gave_way(span: Any, children: Any) -> None:
    """The DSPy LM span of a call whose requests its children made: none of its own usage, their roll-up."""
    attributes = span.attributes
    assert not set(_OWN_USAGE) & set(attributes)
    assert attributes[semconv.USAGE_IN_CHILDREN] is True
    assert (attributes[semconv.LM_CALLS], attributes[semconv.USAGE_INPUT_TOKENS],
            attributes[semconv.USAGE_OUTPUT_TOKENS]) == (len(children), *_billed_on(children))
    assert attributes[semconv.COST_TOTAL_USD] == pytest.approx(
        sum(child.attributes[semconv.GEN_AI_USAGE_COST] for child in children))
    assert not is_lm_call(attributes)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_custom_lm_making_two_litellm_requests_is_two_child_spans_counted_once(traced, tree, lm_server, unique,
                                                                                metric_series, monkeypatch, is_async):
    finished, reader = traced
    lm = DraftThenAnswer(lm_server.base_url)
    send = httpx.AsyncClient.send if is_async else httpx.Client.send

    async def async_send(client: Any, *args: Any, **kwargs: Any) -> Any:
        lm.sends.append(is_instrumentation_enabled())
        return await send(client, *args, **kwargs)

    def sync_send(client: Any, *args: Any, **kwargs: Any) -> Any:
        lm.sends.append(is_instrumentation_enabled())
        return send(client, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient if is_async else httpx.Client, "send", async_send if is_async else sync_send)
    bill, usage = _predict_with(lm, lm_server, f"What is the capital of France? {unique}", is_async)

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, []), (LM_SPAN, [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    children = _children_of(spans, dspy_lm)
    for child in children:  # the usual LiteLLM span contract
        assert child.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
        assert child.attributes[semconv.COST_SOURCE] == "litellm" and child.attributes[semconv.GEN_AI_USAGE_COST] > 0
    _assert_gave_way(dspy_lm, children)
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=2)
    assert lm.sends == [False, False]  # other instrumentations (an HTTP client's) stay suppressed in the child spans

    # The console tree: the module and the DSPy LM span show the bill once, each child its own request.
    rows = [row.split() for row in render_tree(build_trees(records_from_spans(spans))[0]).splitlines()[1:]]
    shown = [(int(row[row.index("in") + 1]), int(row[row.index("out") + 1])) for row in rows]
    assert shown[:2] == [bill.tokens, bill.tokens] and (shown[2][0] + shown[3][0], shown[2][1] + shown[3][1]) == bill.tokens


def test_a_custom_lm_returning_plain_text_counts_its_one_request(traced, tree, lm_server, unique, metric_series):
    finished, reader = traced
    predict = dspy.Predict("question -> answer")
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=PlainText(lm_server.base_url)):
        predict(question=f"What is the capital of Japan? {unique}")

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    _assert_gave_way(dspy_lm, _children_of(spans, dspy_lm))
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=1)


class Judge(dspy.utils.callback.BaseCallback):
    """A callback that asks an LM through LiteLLM around every LM call: before it, and after it unless `after` is
    False; or, before it, a DSPy LM of its own (`judge`)."""

    def __init__(self, base_url: str, *, after: bool = True, judge: dspy.LM | None = None) -> None:
        self.base_url, self.after, self.judge = base_url, after, judge

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if self.judge is None:
            litellm.completion(**_asked_at(self.base_url, [{"role": "user", "content": "Is this prompt safe?"}]))
        elif instance is not self.judge:
            self.judge("Is this prompt safe?")

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        if self.after:
            litellm.completion(**_asked_at(self.base_url, [{"role": "user", "content": "Is this answer right?"}]))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("engine", ENGINES)
def test_dspy_lm_stays_one_span_and_a_callbacks_litellm_calls_are_its_children(traced, tree, lm_server, unique,
                                                                              metric_series, engine, is_async):
    """DSPy's own request has no LiteLLM span below its LM span, on either engine; the callback's two requests
    do, and are counted besides it."""
    finished, reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 **engine_options(engine))
    predict = dspy.Predict("question -> answer")
    question = f"What is the capital of Italy? {unique}"
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=lm, callbacks=[Judge(lm_server.base_url)]):
        asyncio.run(predict.acall(question=question)) if is_async else predict(question=question)

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, []), (LM_SPAN, [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    assert semconv.USAGE_IN_CHILDREN not in dspy_lm.attributes and is_lm_call(dspy_lm.attributes)
    prompts = [child.attributes["llm.input_messages.0.message.content"] for child in _children_of(spans, dspy_lm)]
    assert prompts == ["Is this prompt safe?", "Is this answer right?"]
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=3)


class TwoRequestEngine:
    """A DSPy 3.4 custom engine (`dspy.LM(engine=...)`) that asks LiteLLM twice and answers with the second reply."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def complete(self, request: Any) -> Any:
        from dspy.clients.lm15_boundary import request_kwargs, response_value

        messages = request_kwargs(request, "chat")["messages"]
        litellm.completion(**_asked_at(self.base_url, messages))
        return response_value(litellm.completion(**_asked_at(self.base_url, messages)), "chat", request)


@needs_dspy((3, 4), "custom engines")
def test_a_custom_engine_making_two_litellm_requests_is_two_child_spans(traced, tree, lm_server, unique, metric_series):
    finished, reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", engine=TwoRequestEngine(lm_server.base_url), cache=False)
    predict = dspy.Predict("question -> answer")
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=lm):
        predict(question=f"What is the capital of Spain? {unique}")

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, []), (LM_SPAN, [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    _assert_gave_way(dspy_lm, _children_of(spans, dspy_lm))
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=2)


def test_litellms_own_calls_for_dspys_request_stay_inside_its_one_span(traced, tree, lm_server, unique,
                                                                       metric_series):
    """LiteLLM answers DSPy's request with `fallbacks=` by calling `litellm.acompletion` itself, from its own code: on
    behalf of DSPy's request, not the program's, so no span either (`DSPyRequest`). A guard of that mechanism: without
    it this call is counted twice."""
    finished, reader = traced
    lm_server.failures["broken-model"] = (400, "This model is not available.")
    fallback = {"model": "openai/gpt-4o-mini", "api_base": lm_server.base_url, "api_key": "sk-anything"}
    lm = dspy.LM("openai/broken-model", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 num_retries=0, fallbacks=[fallback], **engine_options("litellm"))
    try:
        with Bill(lm_server) as bill, track() as usage:
            assert lm(f"What is the capital of Peru? {unique}")
    finally:
        del lm_server.failures["broken-model"]

    spans = finished()
    assert tree(spans) == [("chat broken-model", [])]
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=1)


class Delegating(dspy.BaseLM):
    """A custom LM that hands every call to another custom LM (which asks LiteLLM twice)."""

    def __init__(self, inner: dspy.BaseLM) -> None:
        super().__init__("openai/gpt-4o-mini")
        self.inner = inner

    def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        return self.inner(prompt=prompt, messages=messages, **kwargs)


def test_a_custom_lm_calling_another_passes_its_requests_on(traced, tree, lm_server, unique, metric_series):
    """Both DSPy LM spans give way: the outer one to the inner one's requests, which it did not count itself."""
    finished, reader = traced
    predict = dspy.Predict("question -> answer")
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=Delegating(DraftThenAnswer(lm_server.base_url))):
        predict(question=f"What is the capital of Chile? {unique}")

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, [(LM_SPAN, []), (LM_SPAN, [])])])])]
    outer, inner = sorted(_dspy_lm_spans(spans), key=lambda span: span.start_time)
    requests = _children_of(spans, inner)
    _assert_gave_way(inner, requests)
    _assert_gave_way(outer, requests)
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=2)


class OneRequestEngine:
    """A DSPy 3.4 custom engine that asks LiteLLM once."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def complete(self, request: Any) -> Any:
        from dspy.clients.lm15_boundary import request_kwargs, response_value

        messages = request_kwargs(request, "chat")["messages"]
        return response_value(litellm.completion(**_asked_at(self.base_url, messages)), "chat", request)


@pytest.mark.parametrize("judged_by", ["litellm", "dspy-lm"])
@pytest.mark.parametrize("custom_engine", [False, pytest.param(True, marks=needs_dspy((3, 4), "custom engines"))],
                         ids=["dspy-lm", "custom-engine"])
def test_a_dspy_cache_hit_stays_counted_beside_a_callbacks_call(traced, lm_server, unique, custom_engine, judged_by):
    """DSPy's cache answers the second call, which makes no request of its own: the callback's request before it
    (through LiteLLM, or another DSPy LM) is an extra call, not the cache hit's request; the hit stays a counted LM
    call (DSPy 3.0-3.3's dspy.LM, a 3.4 custom engine's LM)."""
    finished, _reader = traced
    options = {"engine": OneRequestEngine(lm_server.base_url)} if custom_engine else \
        {"api_base": lm_server.base_url, "api_key": "sk-anything"}
    lm = dspy.LM("openai/gpt-4o-mini", cache=True, **options)
    judge = dspy.LM("openai/gpt-4o-mini", cache=False, api_base=lm_server.base_url, api_key="sk-anything") \
        if judged_by == "dspy-lm" else None
    prompt = f"What is the capital of Norway? {unique}"
    lm(prompt)  # fills DSPy's cache, untracked
    with Bill(lm_server) as bill, track() as usage, \
            dspy.context(callbacks=[Judge(lm_server.base_url, after=False, judge=judge)]):
        lm(prompt)

    assert bill.requests == 1  # the callback's; DSPy's cache answered the call
    spans = finished()
    dspy_lm = max((span for span in _dspy_lm_spans(spans) if span.parent is None), key=lambda span: span.start_time)
    assert dspy_lm.attributes[semconv.CACHE_HIT] is True and semconv.USAGE_IN_CHILDREN not in dspy_lm.attributes
    totals = usage.total()
    assert (totals["calls"], totals["cache_hits"], totals["input_tokens"]) == (2, 1, bill.tokens[0])


class OpenAISDK(dspy.BaseLM):
    """A custom LM that asks the provider through the OpenAI SDK directly (no LiteLLM call of its own)."""

    def __init__(self, base_url: str) -> None:
        super().__init__("openai/gpt-4o-mini")
        self.base_url = base_url

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key="sk-anything")
        return client.chat.completions.create(model="gpt-4o-mini", messages=_messages(prompt, messages))


@needs_dspy((3, 2), "on_lm_start for a custom BaseLM (3.0 and 3.1 call it only for a dspy.LM)")
def test_a_callbacks_litellm_call_is_an_extra_call_beside_a_custom_lms_own_request(traced, tree, lm_server, unique):
    """The callback's LiteLLM request (before the LM's) is not how the LM answers: the LM span counts the SDK request
    its LM made, and the callback's is counted besides it."""
    finished, _reader = traced
    with Bill(lm_server) as bill, track() as usage, \
            dspy.context(lm=OpenAISDK(lm_server.base_url), callbacks=[Judge(lm_server.base_url, after=False)]):
        dspy.Predict("question -> answer")(question=f"What is the capital of Spain? {unique}")

    assert bill.requests == 2
    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    assert semconv.USAGE_IN_CHILDREN not in dspy_lm.attributes and is_lm_call(dspy_lm.attributes)
    totals = usage.total()
    assert (totals["calls"], (totals["input_tokens"], totals["output_tokens"])) == (2, bill.tokens)


class SecondOpinion(dspy.LM):
    """A `dspy.LM` subclass whose `forward` asks DSPy for the answer (`super().forward`, DSPy's own request on its
    engine) and LiteLLM for a second opinion, and returns one of the two (`returns`: "dspy" or "litellm")."""

    def __init__(self, base_url: str, returns: str, **options: Any) -> None:
        super().__init__("openai/gpt-4o-mini", api_base=base_url, api_key="sk-anything", **options)
        self.base_url, self.returns = base_url, returns

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        answer = super().forward(prompt=prompt, messages=messages, **kwargs)
        opinion = litellm.completion(**_asked_at(self.base_url, _messages(prompt, messages)))
        return answer if self.returns == "dspy" else opinion

    async def aforward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        answer = await super().aforward(prompt=prompt, messages=messages, **kwargs)
        opinion = await litellm.acompletion(**_asked_at(self.base_url, _messages(prompt, messages)))
        return answer if self.returns == "dspy" else opinion


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("returns", ["dspy", "litellm"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_custom_lm_mixing_dspys_request_with_its_own_litellm_call_counts_each_once(
        traced, tree, lm_server, unique, metric_series, engine, returns, is_async):
    """DSPy's request that `super().forward` makes is a DSPy LM span of its own under the custom LM's, beside the
    LiteLLM call's span; the custom LM's span gives way to both, whichever answer it returns."""
    finished, reader = traced
    lm = SecondOpinion(lm_server.base_url, returns, cache=False, **engine_options(engine))
    bill, usage = _predict_with(lm, lm_server, f"What is the capital of Greece? {unique}", is_async)

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, []), (LM_SPAN, [])])])]
    outer, dspys = sorted(_dspy_lm_spans(spans), key=lambda span: span.start_time)
    children = sorted(_children_of(spans, outer), key=lambda span: span.start_time)
    assert children[0] is dspys and is_lm_call(dspys.attributes)
    assert dspys.attributes[semconv.SETTINGS_PREFIX + "lm.model"] == "openai/gpt-4o-mini"
    _assert_gave_way(outer, children)
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=2)


class OnlyDSPy(dspy.LM):
    """A `dspy.LM` subclass whose `forward` only logs and hands the call to DSPy's (`super().forward`)."""

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        return super().forward(prompt=prompt, messages=messages, **kwargs)


class OwnCall(dspy.LM):
    """A `dspy.LM` subclass with its own `__call__`, which asks DSPy's `forward` and returns the answer's text."""

    def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> list[str]:
        response = self.forward(prompt=prompt, messages=messages, **kwargs)
        return [response.choices[0].message.content]


@pytest.mark.parametrize("subclass", [OnlyDSPy, OwnCall], ids=["own-forward", "own-call"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_custom_lm_handing_its_call_to_dspys_forward_is_counted_once(traced, tree, lm_server, unique,
                                                                       metric_series, engine, subclass):
    finished, reader = traced
    lm = subclass("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                  **engine_options(engine))
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question=f"What is the capital of Egypt? {unique}")

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [(LM_SPAN, [])])])]
    outer, dspys = sorted(_dspy_lm_spans(spans), key=lambda span: span.start_time)
    _assert_gave_way(outer, [dspys])
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=1)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cache_hit_of_dspys_request_inside_a_custom_lm_is_counted_once_as_a_hit(traced, lm_server, unique, engine):
    """DSPy's cache answers `super().forward` the second time: that request is a counted cache hit, the LiteLLM call
    beside it a counted request, and the custom LM's span, which returned the hit, gives way to both."""
    finished, _reader = traced
    lm = SecondOpinion(lm_server.base_url, "dspy", cache=True, **engine_options(engine))
    prompt = f"What is the capital of Kenya? {unique}"
    lm(prompt)  # fills DSPy's cache, untracked
    with Bill(lm_server) as bill, track() as usage:
        lm(prompt)

    assert bill.requests == 1  # the second opinion's; DSPy's cache answered its own request
    spans = finished()
    last = max(spans, key=lambda span: span.start_time)
    outer = next(span for span in spans if span.context.span_id == last.parent.span_id)
    hit = [span for span in _children_of(spans, outer) if span.attributes.get(semconv.CACHE_HIT) is True]
    assert len(hit) == 1 and semconv.USAGE_IN_CHILDREN in outer.attributes
    totals = usage.total()
    assert (totals["calls"], totals["cache_hits"], totals["input_tokens"], totals["output_tokens"]) == \
        (2, 1, *bill.tokens)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_apps_own_call_of_lm_forward_is_one_dspy_lm_span(traced, tree, lm_server, unique, metric_series, engine,
                                                            is_async):
    """`lm.forward(...)` called by the app, outside any LM call: DSPy's request, one DSPy LM span with its tokens and
    cost (no LiteLLM span below it on LiteLLM's engine), what it answered, and the response DSPy returns unchanged."""
    finished, reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 **engine_options(engine))
    prompt = f"What is the capital of Cuba? {unique}"
    with Bill(lm_server) as bill, track() as usage:
        response = asyncio.run(lm.aforward(prompt=prompt)) if is_async else lm.forward(prompt=prompt)

    spans = finished()
    assert tree(spans) == [(LM_SPAN, [])]
    (span,) = spans
    assert span.attributes["llm.input_messages.0.message.content"] == prompt
    assert span.attributes["llm.output_messages.0.message.content"] == response.choices[0].message.content
    _assert_counted_once(spans, reader, metric_series, usage, bill, calls=1)


class GroundedAnswer(dspy.BaseLM):
    """A custom LM that embeds the question with a hosted `dspy.Embedder`, then asks LiteLLM for the answer."""

    def __init__(self, base_url: str) -> None:
        super().__init__("openai/gpt-4o-mini")
        self.base_url = base_url
        self.embedder = dspy.Embedder("openai/text-embedding-3-small", caching=False, api_base=base_url,
                                      api_key="sk-anything")

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        messages = _messages(prompt, messages)
        self.embedder([str(messages[-1]["content"])])
        return litellm.completion(**_asked_at(self.base_url, messages))


def test_an_embedder_inside_a_custom_lm_is_an_embeddings_span_counted_beside_its_answer(traced, tree, lm_server,
                                                                                         unique):
    """The Embedder's request is DSPy's code calling LiteLLM, but not the LM call's request: an `embeddings` span of
    its own, counted once, never taken for how the LM answered."""
    finished, _reader = traced
    embedded_before = lm_server.embedding_requests, lm_server.embedding_tokens
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=GroundedAnswer(lm_server.base_url)):
        dspy.Predict("question -> answer")(question=f"What is the capital of Peru? {unique}")
    requests, tokens = lm_server.embedding_requests - embedded_before[0], lm_server.embedding_tokens - embedded_before[1]
    assert (requests, bill.requests) == (1, 1)

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [("embeddings text-embedding-3-small", []), (LM_SPAN, [])])])]
    (embedding,) = [span for span in spans if span.name.startswith("embeddings")]
    assert embedding.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == tokens
    (dspy_lm,) = _dspy_lm_spans(spans)
    assert dspy_lm.attributes[semconv.USAGE_IN_CHILDREN] is True
    assert (dspy_lm.attributes[semconv.LM_CALLS], dspy_lm.attributes[semconv.USAGE_INPUT_TOKENS]) == \
        (2, bill.tokens[0] + tokens)
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == \
        (2, bill.tokens[0] + tokens, bill.tokens[1])


class EmbedThenSDK(OpenAISDK):
    """A custom LM that embeds the prompt with a hosted `dspy.Embedder`, then answers through the OpenAI SDK."""

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        dspy.Embedder("openai/text-embedding-3-small", caching=False, api_base=self.base_url,
                      api_key="sk-anything")([str(_messages(prompt, messages)[-1]["content"])])
        return super().forward(prompt=prompt, messages=messages, **kwargs)


def test_an_embedding_inside_a_custom_lm_is_never_taken_for_its_answer(traced, tree, lm_server, unique):
    """An embedding is never how an LM answers: the LM span counts the SDK request it made, the embedding besides."""
    finished, _reader = traced
    embedded_before = lm_server.embedding_tokens
    with Bill(lm_server) as bill, track() as usage, dspy.context(lm=EmbedThenSDK(lm_server.base_url)):
        dspy.Predict("question -> answer")(question=f"What is the capital of Chad? {unique}")
    tokens = lm_server.embedding_tokens - embedded_before

    spans = finished()
    assert tree(spans) == [("predict", [(LM_SPAN, [("embeddings text-embedding-3-small", [])])])]
    (dspy_lm,) = _dspy_lm_spans(spans)
    assert semconv.USAGE_IN_CHILDREN not in dspy_lm.attributes
    assert (dspy_lm.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            dspy_lm.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == bill.tokens
    totals = usage.total()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == \
        (2, bill.tokens[0] + tokens, bill.tokens[1])


@needs_dspy((3, 4), "streamed LM.forward (3.0-3.3 raise for stream=True)")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_stream_the_app_asks_lm_forward_for_is_counted_when_read(traced, lm_server, unique, metric_series,
                                                                    is_async):
    """`lm.forward(..., stream=True)` hands back LiteLLM's stream, read after `forward` returned: LiteLLM's stream
    span counts it once it is read, with the tokens the server billed."""
    finished, reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 **engine_options("litellm"))
    prompt = f"What is the capital of Fiji? {unique}"

    async def read_async() -> list[Any]:
        return [chunk async for chunk in await lm.aforward(prompt=prompt, stream=True)]

    with Bill(lm_server) as bill, track() as usage:
        chunks = asyncio.run(read_async()) if is_async else list(lm.forward(prompt=prompt, stream=True))
    assert chunks
    _assert_counted_once(finished(), reader, metric_series, usage, bill, calls=1)


@pytest.mark.parametrize("model_type", ["chat", "text", "responses"])
def test_the_answer_of_an_apps_lm_forward_call_is_its_spans_output(traced, lm_server, unique, model_type):
    finished, _reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 model_type=model_type, **engine_options("litellm"))
    lm.forward(prompt=f"Say hi {unique}")

    (span,) = finished()
    answer = span.attributes["llm.output_messages.0.message.content"]
    assert answer.startswith("This is lmscope's stand-in LM. You said:") and unique in answer


def _rollout_warning_blames(lm: dspy.LM) -> list[tuple[str, int]]:
    """Where the warning about `rollout_id` at temperature 0 points, for `lm.forward` called from here."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm.forward(prompt="Say hi", rollout_id=1)
    return [(warning.filename, warning.lineno) for warning in caught if "rollout_id" in str(warning.message)]


def _untraced_then_traced(run: Any) -> tuple[Any, Any]:
    """What `run()` gives without lmscope, then with lmscope's DSPy instrumentation (spans kept in memory)."""
    from memory_spans import memory_provider

    from lmscope.instrumentation.dspy import DSPyInstrumentor

    untraced = run()
    provider, _exporter = memory_provider()
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(tracer=provider.get_tracer("test"))
    try:
        return untraced, run()
    finally:
        instrumentor.uninstrument()


def test_dspys_rollout_warning_in_lm_forward_blames_the_line_it_blames_untraced(lm_server):
    """DSPy warns with a fixed `stacklevel` there (3.0-3.3 in `LM.forward` itself, 3.4 in `prepare`): lmscope's
    wrapper of `LM.forward` does not take the blame."""
    options = {"model": "openai/gpt-4o-mini", "api_base": lm_server.base_url, "api_key": "sk-anything",
               "cache": False, "temperature": 0}
    untraced, traced = _untraced_then_traced(lambda: _rollout_warning_blames(dspy.LM(**options)))
    assert traced == untraced and len(untraced) == 1


class Ambiguous:
    """A value whose truth cannot be told: `bool()` raises."""

    def __bool__(self) -> bool:
        raise ValueError("ambiguous")


def test_a_bad_argument_to_lm_forward_fails_as_untraced_and_leaves_tracing_on(traced, tree, lm_server, unique):
    """The app's `cache=` argument cannot be read: DSPy's error reaches the app, no span is left open, the app's
    context is as before, and the next call is traced."""
    from opentelemetry import context as otel_context

    finished, _reader = traced
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                 **engine_options("litellm"))
    before = otel_context.get_current()
    with pytest.raises(ValueError, match="ambiguous"):
        lm.forward(prompt=f"Say hi {unique}", cache=Ambiguous())
    assert otel_context.get_current() is before
    lm(f"Say hello {unique}")
    assert tree(finished()) == [(LM_SPAN, [])]


class CountingChecks(dspy.LM):
    """A `dspy.LM` subclass whose `forward` is DSPy's through `super()`, and whose rollout check counts its runs."""

    checks = 0

    def _warn_zero_temp_rollout(self, temperature: Any, rollout_id: Any) -> None:
        type(self).checks += 1
        super()._warn_zero_temp_rollout(temperature, rollout_id)

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        return super().forward(prompt=prompt, messages=messages, **kwargs)


def test_a_subclass_rollout_check_runs_as_often_as_untraced(lm_server, unique):
    def checks() -> int:
        CountingChecks.checks = 0
        lm = CountingChecks("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-anything", cache=False,
                            **engine_options("litellm"))
        lm(f"Say hi {unique}", rollout_id=1)
        return CountingChecks.checks

    untraced, traced = _untraced_then_traced(checks)
    assert traced == untraced > 0
