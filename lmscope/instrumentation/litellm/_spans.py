"""The span of one LiteLLM call: started before LiteLLM runs, ended with its response (or, for a stream, when the
stream ends: `_streams.py`).

The same attribute contract as DSPy's LM spans (`instrumentation/dspy/_attributes.py`, `telemetry/_messages.py`),
the same consumers (roll-ups into the calling DSPy module, `lmscope.track()`, metrics listeners). Exactly once:
inside lmscope's DSPy LM span OpenTelemetry's instrumentation is suppressed, and DSPy's own LiteLLM request there
(`engine="litellm"`) has no span of its own; a call the program's code makes there (a custom LM, a callback) is a
child of the DSPy LM span (`_in_dspy_lm.py`). An app's own `suppress_instrumentation()` block stands it down.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, SpanKind, Tracer

from ...telemetry import _semconv as semconv
from ...telemetry._attributes_on_export import AttributesLater, Later, copied_messages, resolver, set_on_export
from ...telemetry._content import ContentPolicy
from ...telemetry._context_attributes import context_attributes
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._lm_call import LMCall
from ...telemetry._lm_vendors import split_route
from ...telemetry._memo import BoundedMemo
from ...telemetry._messages import input_message_attributes, output_message_attributes
from ...telemetry._phase import current_phase
from ...telemetry._usage import Usage, active_trackers
from .._errors import record_error
from .._litellm_table import zero_is_unpriced
from .._lm_span_view import lm_call_context, with_lm_span
from .._providers import provider_answered, provider_given
from .._setup import LMCallListener
from ..dspy._attributes import (
    as_embedding_request,
    drop_output_tokens,
    lm_request_attributes,
    lm_result_attributes,
    provider_attributes,
    request_parameters,
    to_json,
)
from ..dspy._frames import EMBEDDING_LOOKUP_KEY, FRAME_KEY, EmbeddingLookup, LMFrame, ModuleFrame
from ..dspy._settings import dspy_cache_tier_on
from ._in_dspy_lm import DSPyRequest, lm_call_open, made_by_callback, made_by_dspy
from ._message_logging import messages_hidden_by_litellm
from ._neighbours import LiteLLMNeighbours
from ._responses import responses_answers, responses_finish_reasons, responses_messages
from ._results import answers, as_cache_hit, call_from_response, from_litellm_cache, usage_cost
from ._router_frame import RouterFrame

CHAT, TEXT_COMPLETION, EMBEDDINGS = "chat", "text_completion", "embeddings"
RESPONSES = "responses"
"""The Responses API: a `chat` operation (GenAI semantic conventions), whose request and result have their own shape
(`_responses.py`)."""
_route: BoundedMemo[str, tuple[str | None, str]] = BoundedMemo(split_route)


def prompt_messages(prompt: Any) -> list[dict[str, Any]] | None:
    """A text completion's prompt as the chat messages LiteLLM sends for it (docs/litellm-internals.md §1): a string
    is one user message, a list of strings one user message each; None for a prompt of token ids."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(part, str) for part in prompt):
        return [{"role": "user", "content": part} for part in prompt]
    return None


_CALL_KEY = otel_context.create_key("lmscope-litellm-call")
"""The `CallFrame` of the LiteLLM call whose context is current: code running inside the call (the OpenAI SDK's
retries, LiteLLM's own) finds it there."""


class CallFrame:
    """One LiteLLM call in flight: the span of its provider request (of each in turn, when the OpenAI SDK sends a
    failed request again: `LiteLLMRuntime.request_failed`)."""

    __slots__ = ("content", "context", "handed_over", "kwargs", "later", "litellm_prices", "lm", "lm_request",
                 "model", "operation", "outer", "parent", "phase", "provider", "provider_answered", "responses_api",
                 "span", "started", "token", "trackers")

    def __init__(self, operation: str, model: str, provider: str | None, parent: ModuleFrame | None,
                 trackers: tuple[Usage, ...], kwargs: Mapping[str, Any], phase: str, outer: Context,
                 litellm_prices: bool, content: ContentPolicy) -> None:
        self.responses_api = operation == RESPONSES
        operation = CHAT if self.responses_api else operation
        self.operation, self.model, self.provider = operation, model, provider
        self.parent, self.trackers, self.kwargs, self.phase = parent, trackers, kwargs, phase
        self.outer = outer
        """The caller's context: the parent of each span of the call."""
        self.litellm_prices = litellm_prices
        """False for LiteLLM's undecorated function (its async retry path calls it, docs/litellm-internals.md §6),
        whose response `client` never prices: lmscope then prices it from LiteLLM's table, as a stream."""
        self.content = content
        """What of the call's messages its spans capture: the runtime's policy, without any content when LiteLLM
        keeps this call's messages from its own logging (`_message_logging.py`)."""
        self.span: Span = INVALID_SPAN
        self.later = False
        """The span's attributes are stored on export (`telemetry/_attributes_on_export.py`)."""
        self.started = 0.0
        self.token: Token[Context] | None = None
        self.context: Context | None = None
        """The context inside the call: the span's read-only view current, other instrumentations suppressed."""
        self.provider_answered = False
        """`provider` was learned from the result (`LiteLLMRuntime.answered_by`): not among the start attributes."""
        self.handed_over = False
        """LiteLLM retries the call itself (`num_retries`, `LiteLLMRuntime.hand_over`): the span has ended with the
        first attempt, each retry is a call of its own, and what LiteLLM returns or raises is theirs."""
        self.lm: LMFrame | None = None
        """The DSPy LM call this one was made inside of (by a custom LM, a callback: `_in_dspy_lm.py`), told when
        this call is counted."""
        self.lm_request = True
        """Inside a DSPy LM call: made by the LM's own code, not by a DSPy callback (`_in_dspy_lm.made_by_callback`)."""


def _answered_by_other_calls(kwargs: Mapping[str, Any], is_async: bool) -> bool:
    """A chat call LiteLLM answers with calls of its package attributes, each a provider request, so a traced call
    and the span of its request (LiteLLM's own tests, docs/litellm-internals.md §6): `fallbacks=` (else
    `litellm.model_fallbacks`) calls `litellm.acompletion` once per model in turn; the sync `completion`'s
    `model_list=` calls `litellm.completion` once per matching deployment, all at once on a thread pool
    (`acompletion`'s awaits, inside its own span, the one coroutine those calls return first). This call has no
    span then, and is not suppressed, lest they run untraced inside it."""
    import litellm

    if (kwargs.get("fallbacks") or litellm.model_fallbacks) is not None:
        return True
    return not is_async and kwargs.get("model_list") is not None


class LiteLLMRuntime:
    def __init__(self, tracer: Tracer, content: ContentPolicy, lm_call_listeners: list[LMCallListener]) -> None:
        self.tracer = tracer
        self.resolve = resolver(tracer)
        """(the tracer the next span goes through, whether its attributes are stored on export)."""
        self.content = content
        self.no_content = content.without_content()
        """`content` capturing no inputs or outputs: for a call LiteLLM keeps the messages of from its own logging."""
        self.lm_call_listeners = lm_call_listeners
        self.neighbours: LiteLLMNeighbours | None = None
        """Looks for other LiteLLM instrumentations at each call (`_neighbours.py`)."""
        self.retired = False
        """Set when lmscope unpatches LiteLLM. A wrapper still held somewhere (`from litellm import completion` run
        while lmscope was on, a copy unpickled in another process: `__reduce__`) then traces with the runtime in force
        (`current`), and passes calls through while there is none."""

    def current(self) -> LiteLLMRuntime:
        """This runtime, or once retired the one in force now (a retired stand-in if lmscope is off): a LiteLLM name
        bound during an earlier `instrument()` is traced by a later one, as the package attribute is."""
        return live_runtime() if self.retired else self

    def __reduce__(self) -> tuple[Callable[[], LiteLLMRuntime], tuple[()]]:
        """Pickled as a reference to the runtime in force where it is loaded, as the DSPy one is
        (`dspy._runtime.Runtime.__reduce__`): a wrapper cloudpickle copies by value traces there if lmscope is on."""
        return live_runtime, ()

    def start(self, operation: str, kwargs: Mapping[str, Any], litellm_prices: bool = True,
              is_async: bool = False) -> CallFrame | DSPyRequest | None:
        """The call's span, made current, with other instrumentations suppressed inside it; None when suppressed;
        a `DSPyRequest` for DSPy's own request inside its LM span (`_in_dspy_lm.py`).
        `litellm_prices`: `CallFrame.litellm_prices`; `is_async`: the call is LiteLLM's async function."""
        lm_frame = None
        if self.retired:
            return None
        if not is_instrumentation_enabled():
            ctx = otel_context.get_current()
            lm_frame = lm_call_open(ctx, ctx.get(_CALL_KEY))
            if lm_frame is None:
                return None
            if made_by_dspy():
                lm_frame.dspy_requested = True
                return DSPyRequest(ctx, _CALL_KEY)
        if operation == CHAT and _answered_by_other_calls(kwargs, is_async):
            return None
        if self.neighbours is not None:
            self.neighbours.look()
        ctx = otel_context.get_current()
        phase = current_phase(ctx)
        provider, model = _route(str(kwargs.get("model") or "unknown"))
        if provider is None:  # a bare model name: the provider the caller named, else the result's (`answered_by`)
            provider = provider_given(kwargs)
        parent = ctx.get(FRAME_KEY)
        if type(parent) is LMFrame:
            parent = parent.parent
        frame = CallFrame(operation, model, provider, parent if isinstance(parent, ModuleFrame) else None,
                          active_trackers(ctx), kwargs, phase, ctx, litellm_prices,
                          self.no_content if messages_hidden_by_litellm(kwargs) else self.content)
        frame.lm = lm_frame
        if lm_frame is not None:  # an embedding is never how an LM answers; a callback's call never its request
            frame.lm_request = operation != EMBEDDINGS and not made_by_callback()
        self._open_span(frame)
        # Inside the call: other instrumentations suppressed, a read-only view of our span (`_lm_span_view.py`), and
        # the call's frame, which code inside it finds (the OpenAI SDK's retries, LiteLLM's own).
        frame.context = lm_call_context(frame.span, ctx, {_CALL_KEY: frame})
        frame.token = otel_context.attach(frame.context)
        return frame

    def _open_span(self, frame: CallFrame) -> None:
        """Start the span of the call's next provider request: its first, or one the OpenAI SDK sends again."""
        operation = RESPONSES if frame.responses_api else frame.operation
        name = f"{frame.operation} {self.content.name(frame.model)[0]}"
        tracer, later = self.resolve()  # later: attributes stored on export (`_attributes_on_export.py`)
        frame.later = later
        if not later:
            frame.span = tracer.start_span(name, frame.outer, SpanKind.CLIENT,
                                           self._start_attributes(operation, frame, frame.outer, False))
        else:
            frame.span = span = tracer.start_span(name, frame.outer, SpanKind.CLIENT)
            if span.is_recording():
                attributes = self._start_attributes(operation, frame, frame.outer, True)
                inputs = self._inputs_on_export(operation, frame) if frame.content.capture_inputs else None
                if inputs is None:
                    set_on_export(span, attributes)
                else:
                    set_on_export(span, attributes, inputs)
        frame.started = time.perf_counter()
        if isinstance(frame.parent, RouterFrame):  # a deployment attempt of the router call
            frame.parent.attempt_started()

    @staticmethod
    def current_call() -> CallFrame | None:
        """The traced LiteLLM call the running code is inside of, while LiteLLM has not returned; else None."""
        frame = otel_context.get_value(_CALL_KEY)
        # A thread LiteLLM logs from runs in a copy of the call's context, also after the call has returned.
        return frame if isinstance(frame, CallFrame) and frame.token is not None else None

    def retried_call(self) -> tuple[CallFrame, BaseException] | None:
        """The traced call LiteLLM is retrying itself (`num_retries`: its `client` wrapper calls
        `completion_with_retries` and kin while it handles the failure, docs/litellm-internals.md §6), and the error
        of the attempt that failed; None elsewhere."""
        frame = self.current_call()
        error = sys.exc_info()[1] if frame is not None and not frame.handed_over else None
        return None if frame is None or error is None else (frame, error)

    def hand_over(self, frame: CallFrame, error: BaseException) -> Token[Context]:
        """LiteLLM retries the call after `error`: the call's span ends as that failed attempt's, and the retries run
        in the caller's context, where each is a call of its own, a sibling span (as `completion_with_retries`'
        attempts are). Returns the token that puts the call's context back once they are done."""
        frame.handed_over = True
        self.finish(frame, None, error, None)
        return otel_context.attach(frame.outer)

    def request_failed(self, frame: CallFrame, error: BaseException) -> None:
        """The provider request of the frame's span failed with `error`, and the call sends it again (the OpenAI
        SDK's own retries, docs/litellm-internals.md §6): its span ends, failed, as a call LiteLLM raised would.
        `resent` opens the span of the next request."""
        self.finish(frame, None, error, None)

    def resent(self, frame: CallFrame) -> None:
        """The call sends its request again (after `request_failed`): a new span, a sibling of the failed one, made
        current inside the call as the first was."""
        self._open_span(frame)
        if frame.context is not None:  # set when the call started
            frame.context = with_lm_span(frame.span, frame.context)
            # Left attached: `leave` detaches the call's first token, which resets the context to the caller's,
            # past every later attach in the call.
            otel_context.attach(frame.context)

    def fall_back(self, frame: CallFrame, error: BaseException, model: str) -> None:
        """LiteLLM sends the call's request again, to another model (`context_window_fallback_dict`, after `error`;
        `_context_window.py`): the failed request's span ends with that error, and the fallback's opens, named for
        its model. LiteLLM returns that response unpriced (its `client` wrapper returns it as is): lmscope prices it
        from LiteLLM's table for that model, as a stream."""
        self.finish(frame, None, error, None)
        frame.kwargs = {**frame.kwargs, "model": model}
        provider, frame.model = _route(model)
        frame.provider = provider if provider is not None else provider_given(frame.kwargs)
        frame.provider_answered, frame.litellm_prices = False, False
        self.resent(frame)

    def leave(self, frame: CallFrame) -> None:
        """Detach the call's context (when LiteLLM returns; a stream's span stays open until the stream ends)."""
        if frame.token is not None:
            otel_context.detach(frame.token)
            frame.token = None

    @staticmethod
    def answered_by(frame: CallFrame, result: Any) -> None:
        """A bare model name (`gpt-4o-mini`) LiteLLM routed itself: the provider its result names
        (`_hidden_params["custom_llm_provider"]`, a stream's `custom_llm_provider`), as a prefix would have; for an
        answer from LiteLLM's cache, which names none, where LiteLLM routes the model (`_cache_hit_route`)."""
        if frame.provider is not None:
            return
        provider = provider_answered(result)
        if provider is None and from_litellm_cache(result):
            provider = _cache_hit_route(frame.kwargs)
        if provider is not None:
            frame.provider, frame.provider_answered = provider, True

    def end(self, frame: CallFrame, response: Any, error: BaseException | None) -> None:
        """End a call whose response is complete (not a stream)."""
        call = None
        try:
            if error is None:
                call = call_from_response(response, self.new_call(frame))
                if frame.responses_api:
                    call.finish_reasons = responses_finish_reasons(response)
                # LiteLLM prices a hit 0.0 (looked at first: reading its flag off a pydantic response costs ~4 µs);
                # what the hit saved is its table's price
                if call.cost_usd == 0.0 and from_litellm_cache(response):
                    as_cache_hit(call, _table_price(frame, call, response))
                elif call.cost_usd == 0.0 and zero_is_unpriced(frame.model, frame.provider):
                    call.cost_usd = call.cost_source = None
                elif call.cost_usd is None and not frame.litellm_prices:
                    call.cost_usd = _table_price(frame, call, response)
                    call.cost_source = "litellm" if call.cost_usd is not None else None
            outputs = self._outputs(frame, response, call.finish_reasons) if call is not None else None
            self.finish(frame, call, error, outputs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("LiteLLM span end", exc)
            self.end_span(frame, answered=False)

    def new_call(self, frame: CallFrame) -> LMCall:
        return LMCall(model=frame.model, provider=frame.provider, engine="litellm",
                      duration_s=time.perf_counter() - frame.started,
                      module_path=frame.parent.path if frame.parent is not None else None, operation=frame.operation,
                      phase=frame.phase, cache_used=frame.operation == EMBEDDINGS and _dspy_cache_missed(frame.outer))

    def finish(self, frame: CallFrame, call: LMCall | None, error: BaseException | None,
               outputs: AttributesLater | None, extra: Mapping[str, Any] | None = None) -> None:
        """Attributes, consumers and `span.end()` for a finished call (`call` None: it failed before a response).
        `outputs`: the answers' attributes, or their builder to run on export (`answer_attributes`)."""
        span = frame.span
        try:
            if call is None:
                call = self.new_call(frame)
                call.error_type = type(error).__name__ if error is not None else None
            elif error is not None:
                call.error_type = type(error).__name__
            if span.is_recording():
                attributes = lm_result_attributes(call, self.content) if error is None else {}
                if frame.operation == EMBEDDINGS:  # no completion: tokens in, nothing out
                    drop_output_tokens(attributes)
                if frame.provider_answered and frame.provider is not None:
                    attributes.update(provider_attributes(frame.provider))
                if callable(outputs):  # the answers, built on export; each part in its place, as in the call
                    set_on_export(span, attributes, outputs, extra or {})
                else:
                    attributes.update(outputs or {})
                    attributes.update(extra or {})
                    if frame.later:
                        set_on_export(span, attributes)
                    else:
                        span.set_attributes(attributes)
                if error is not None:
                    record_error(span, error, self.content)
            if error is None:  # as for DSPy's LM spans: a failed call rolls up nothing; metrics count its error
                parent = frame.parent
                if parent is not None and parent.rolls_up:
                    parent.add_call(call)
                for usage in frame.trackers:
                    usage.record(call)
                if frame.lm is not None:  # made inside a DSPy LM call, by other code than DSPy's
                    frame.lm.add_child(call, request=frame.lm_request)
            for listener in self.lm_call_listeners:
                listener(call)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("LiteLLM span end", exc)
        finally:
            self.end_span(frame, answered=error is None)

    @staticmethod
    def end_span(frame: CallFrame, answered: bool) -> None:
        """`span.end()`, then tell a router call the attempt is over (which may end the router span, after it)."""
        frame.span.end()
        if isinstance(frame.parent, RouterFrame):
            frame.parent.attempt_ended(frame.model if answered else None)

    def _start_attributes(self, operation: str, frame: CallFrame, ctx: Context, later: bool) -> dict[str, Any]:
        """`later`: the captured request is built on export, not here (`_attributes_on_export.py`)."""
        model, provider, kwargs, phase = frame.model, frame.provider, frame.kwargs, frame.phase
        try:
            attributes = lm_request_attributes(model, provider, request_parameters({}, kwargs), self.content)
            attributes[semconv.PHASE] = phase
            if operation == EMBEDDINGS:
                as_embedding_request(attributes)
            elif operation not in (CHAT, RESPONSES):
                attributes[semconv.GEN_AI_OPERATION_NAME] = operation
            scoped = context_attributes(ctx, self.content)
            if scoped:
                attributes.update(scoped)
            if frame.content.capture_inputs and not later:
                value, tools = _request_content(operation, kwargs)
                if value is not None:
                    attributes.update(self._inputs(operation, value, tools, frame.content))
            return attributes
        except Exception as exc:  # noqa: BLE001 - a builder's fault costs its attributes, not the call
            report_internal_error("LiteLLM span attributes", exc)
            return {semconv.PHASE: phase}

    def _inputs_on_export(self, operation: str, frame: CallFrame) -> Callable[[], dict[str, Any]] | None:
        """The builder of the captured request, to run on export over a copy of its messages taken now; None when
        there is none."""
        try:
            value, tools = _request_content(operation, frame.kwargs)
            if value is not None:
                return Later((self._inputs, operation, copied_messages(value), copied_messages(tools), frame.content))
        except Exception as exc:  # noqa: BLE001 - a builder's fault costs its attributes, not the call
            report_internal_error("LiteLLM span attributes", exc)
        return None

    @staticmethod
    def _inputs(operation: str, value: Any, tools: Any, policy: ContentPolicy) -> dict[str, Any]:
        """The captured request `value` (`_request_content`) as `input.value` and structured messages."""
        text, redacted = policy.json(to_json(value), semconv.INPUT_VALUE)
        attributes: dict[str, Any] = {semconv.INPUT_VALUE: text, semconv.INPUT_MIME_TYPE: semconv.MIME_JSON}
        if redacted:
            attributes[semconv.SCRUBBED] = True
        if operation in (CHAT, RESPONSES):
            attributes.update(input_message_attributes(value, tools, policy))
        elif operation == TEXT_COMPLETION and (messages := prompt_messages(value)) is not None:
            attributes.update(input_message_attributes(messages, None, policy))
        return attributes

    def _outputs(self, frame: CallFrame, response: Any, finish_reasons: tuple[str, ...]) -> AttributesLater:
        if not frame.content.capture_outputs:
            return {}
        if frame.operation == EMBEDDINGS:
            data = getattr(response, "data", None) or []
            first = data[0] if data else None
            vector = first.get("embedding") if isinstance(first, dict) else getattr(first, "embedding", None)
            summary = {"embeddings": len(data), "dimensions": len(vector) if isinstance(vector, list) else None}
            return {semconv.OUTPUT_VALUE: to_json(summary), semconv.OUTPUT_MIME_TYPE: semconv.MIME_JSON}
        texts = responses_answers(response) if frame.responses_api else answers(response)
        return self.answer_attributes(texts, frame, finish_reasons)

    def answer_attributes(self, texts: list[Any], frame: CallFrame,
                          finish_reasons: tuple[str, ...] | None) -> AttributesLater:
        """`output.value` and the output messages of a chat or text completion's answers; for a span whose attributes
        are stored on export, the builder of them over a copy of `texts` (`_attributes_on_export.py`)."""
        policy = frame.content
        if frame.later:  # built on export, from a copy (`finish` hands it over)
            return Later((_answer_attributes, copied_messages(texts), finish_reasons, policy))
        return _answer_attributes(texts, finish_reasons, policy)


def _answer_attributes(texts: list[Any], finish_reasons: tuple[str, ...] | None,
                       policy: ContentPolicy) -> dict[str, Any]:
    """`output.value` and the output messages of a chat or text completion's answers."""
    text, redacted = policy.json(to_json(texts), semconv.OUTPUT_VALUE)
    attributes: dict[str, Any] = {semconv.OUTPUT_VALUE: text, semconv.OUTPUT_MIME_TYPE: semconv.MIME_JSON}
    if redacted:
        attributes[semconv.SCRUBBED] = True
    attributes.update(output_message_attributes(texts, finish_reasons, policy))
    return attributes


def _request_content(operation: str, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """(what a call sent, as `input.value` records it, or None; the tools it offered)."""
    if operation == RESPONSES:
        return responses_messages(kwargs), kwargs.get("tools")
    if operation == CHAT:
        return kwargs.get("messages"), kwargs.get("tools")
    return kwargs.get("input" if operation == EMBEDDINGS else "prompt"), None


def live_runtime() -> LiteLLMRuntime:
    """The runtime of the LiteLLM instrumentation in force in this process; where there is none, a retired one, whose
    wrappers pass every call through."""
    from . import LiteLLMInstrumentor  # this module is imported by it

    runtime = LiteLLMInstrumentor().runtime
    return _retired_runtime() if runtime is None else runtime


@functools.cache
def _retired_runtime() -> LiteLLMRuntime:
    """One stand-in for every wrapper that outlived lmscope (a held name calls `live_runtime` at each call)."""
    runtime = LiteLLMRuntime(NoOpTracer(), ContentPolicy.capturing(False), [])
    runtime.retired = True
    return runtime


def _dspy_cache_missed(ctx: Context) -> bool:
    """The embedding request is a `dspy.Embedder` batch DSPy's request cache missed (`dspy/_embedding_cache.py`): a
    cache request, as a hit there is."""
    return isinstance(ctx.get(EMBEDDING_LOOKUP_KEY), EmbeddingLookup) and dspy_cache_tier_on()


def _cache_hit_route(kwargs: Mapping[str, Any]) -> str | None:
    """The provider of a bare model name's answer from LiteLLM's cache, which names none: where LiteLLM routes the
    call's model, as its cache handler resolves it for a hit (`litellm.get_llm_provider` of the model,
    `custom_llm_provider`, `api_base` and `api_key`; docs/litellm-internals.md §2). The same arguments routed the
    call that filled the cache."""
    import litellm

    try:
        provider = litellm.get_llm_provider(
            model=str(kwargs.get("model") or ""), custom_llm_provider=kwargs.get("custom_llm_provider"),
            api_base=kwargs.get("api_base"), api_key=kwargs.get("api_key"))[1]
    except Exception as exc:  # noqa: BLE001 - a model LiteLLM cannot route: the span names no provider
        report_internal_error("provider of a LiteLLM cache hit", exc)
        return None
    return provider if isinstance(provider, str) and provider else None


def _table_price(frame: CallFrame, call: LMCall, response: Any) -> float | None:
    """LiteLLM's table's price of a response's usage (its table reads a chat usage, not a Responses one: that is
    priced from the call's token counts)."""
    usage = None if frame.responses_api else getattr(response, "usage", None)
    return litellm_price(frame, call.input_tokens, call.output_tokens, usage)


def litellm_price(frame: CallFrame, prompt_tokens: int, completion_tokens: int, usage: Any = None) -> float | None:
    """LiteLLM's price of a stream (as for a call that is not streamed) or of an answer from its cache; None if unknown.
    `usage`, the provider's (a LiteLLM `Usage`): the bill LiteLLM wrote on it, else its table for that usage, cached
    and reasoning tokens priced as such. Without it (counted tokens), its table for the tokens."""
    price = usage_cost(usage)
    if price is None:
        import litellm

        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=_priced_model(frame), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                usage_object=usage)
        except Exception:  # noqa: BLE001 - LiteLLM raises for a model it has no price for
            return None
        price = float(prompt_cost) + float(completion_cost)
    return None if price == 0.0 and zero_is_unpriced(frame.model, frame.provider) else price


def _priced_model(frame: CallFrame) -> str:
    """The model the call is priced as, as LiteLLM prices it: the call's, except for a text completion of an OpenAI
    model that is not a chat model (`openai/gpt-3.5-turbo-instruct`), which `litellm.text_completion` sends to the
    legacy completions API as `text-completion-openai/<model>`: its table has the price there only."""
    model = str(frame.kwargs.get("model") or "")
    if frame.operation == TEXT_COMPLETION and frame.provider == "openai":
        import litellm

        if frame.model not in litellm.open_ai_chat_completion_models:
            return f"text-completion-openai/{frame.model}"
    return model
