"""A streamed LiteLLM call: its span covers the whole stream and ends when the stream does.

`completion(stream=True)` returns LiteLLM's `CustomStreamWrapper` (sync and async iteration in one class);
`responses(stream=True)` a Responses API iterator (one class for sync, another for async iteration: the traced class
defines only what its base has; their events are read by `_responses_stream.ResponsesStreamRecorder`). lmscope
gives the very object back, its class switched to a subclass that reports each chunk to a `StreamRecorder`:
`isinstance` checks, attributes and identity stay what the program expects, and nothing is copied. The span ends:
- at the stream's end (StopIteration / StopAsyncIteration), with the provider's usage chunk when the request asked
  for one (`stream_options={"include_usage": True}`) and the bill LiteLLM wrote on it, else LiteLLM's token counter
  (`lmscope.usage.estimated=true`) and its table;
- on an error raised while iterating (status ERROR, as for any failed call);
- when the program closes it early (`close()`/`aclose()`) or drops it unfinished (garbage collection): marked
  `lmscope.stream.abandoned=true`, and status ERROR when nobody closed it (`unfinished_stream`; a Router call's
  stream and its attempt's say the same, `_router.py`). Never a span left open.
The first chunk's arrival is the `first_token` event and `gen_ai.response.time_to_first_chunk` (seconds). A request
for several choices (`n` > 1) also reads the provider's own chunks (`chunk_creator`), for the finish reasons of the
choices LiteLLM passes on none for (docs/litellm-internals.md §3); a text completion's stream, which has no
`chunk_creator`, through the chat stream it reads (`inner_chat_stream`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, Status, StatusCode

from ...telemetry import _semconv as semconv
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._lm_call import LMCall
from .._stack import drop_own_frame
from .._token_counts import non_empty_str, usage_into
from ._results import as_cache_hit
from ._router_frame import RouterFrame
from ._spans import TEXT_COMPLETION, CallFrame, LiteLLMRuntime, litellm_price, prompt_messages
from ._stream_answers import StreamedAnswers
from ._stream_tokens import estimate_tokens


class StreamObserver:
    """What a traced stream reports to (a `StreamRecorder`: an LM call's stream; or a router call's stream), and
    ends however the stream ends."""

    reading = False
    """Inside the stream's own `__next__`/`__anext__`: LiteLLM closes the stream itself at its end (and on errors)
    before raising, and that close is not the program's."""
    reads_provider_chunks = False
    """Also shown each chunk as the provider sent it (`provider_chunk`): its stream's class reads them."""

    def end(self, error: BaseException | None = None, *, abandoned: bool = False, closed: bool = False) -> None:
        raise NotImplementedError

    def chunk(self, chunk: Any) -> None:
        """A chunk the stream gave the program."""

    def provider_chunk(self, chunk: Any) -> None:
        """A chunk as the provider sent it, before LiteLLM makes it (or not) one for the program."""

    def while_reading(self) -> AbstractContextManager[None]:
        """Entered around each read of a chunk."""
        return nullcontext()

    @contextmanager
    def reading_chunk(self, end_of_stream: type[BaseException]) -> Iterator[None]:
        """Around the stream's own `__next__`/`__anext__`: its end or its error ends the observer."""
        self.reading = True
        try:
            with self.while_reading():
                yield
        except end_of_stream:
            self.end()
            raise
        except BaseException as error:
            self.end(error)
            raise
        finally:
            self.reading = False


_recorders: weakref.WeakKeyDictionary[Any, StreamObserver] = weakref.WeakKeyDictionary()
_traced_classes: dict[tuple[type, bool, bool], type] = {}
_classes_lock = threading.Lock()


class StreamRecorder(StreamObserver):
    """What a stream has delivered so far; ends the call's span once, however the stream ends."""

    def __init__(self, runtime: LiteLLMRuntime, frame: CallFrame) -> None:
        self.runtime, self.frame = runtime, frame
        self.answers = StreamedAnswers()
        self.finish_reasons: dict[int, str] = {}
        self.provider_finish_reasons: dict[int, str] = {}
        """Per choice, the finish reason the provider's own chunks gave: LiteLLM passes on the first choice's finish
        only (docs/litellm-internals.md §3), so a request for several choices reads them there too."""
        choices = frame.kwargs.get("n")
        self.reads_provider_chunks = type(choices) is int and choices > 1
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.first_chunk_s: float | None = None
        self.from_cache = False
        """LiteLLM replays the stream from its cache (`_results.from_litellm_cache`)."""
        self._ended = False
        self._lock = threading.Lock()

    @contextmanager
    def while_reading(self) -> Iterator[None]:
        """LiteLLM runs in the call's context while a chunk is read, as during the call: at the stream's end it logs
        the call, and its otel callback must find the span's read-only view current, not the program's span
        (`_lm_span_view.py`)."""
        inside = self.frame.context
        token = otel_context.attach(inside) if inside is not None else None
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)

    def chunk(self, chunk: Any) -> None:
        try:
            if self.first_chunk_s is None:
                self.first_chunk_s = time.perf_counter() - self.frame.started
                self.frame.span.add_event("first_token")
            self.read(chunk)
        except Exception as exc:  # noqa: BLE001 - a chunk we cannot read costs its facts, not the stream
            report_internal_error("reading a LiteLLM stream chunk", exc)

    def read(self, chunk: Any) -> None:
        """Take what a chat (or text) completion chunk tells: its usage, model, id, text, tool calls and finish
        reason."""
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "prompt_tokens", None):
            self.usage = usage
        self.response_model = self.response_model or getattr(chunk, "model", None)
        self.response_id = self.response_id or getattr(chunk, "id", None)
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0) or 0
            delta = getattr(choice, "delta", None)
            # A text completion's chunks carry `choice.text` (LiteLLM's TextCompletionStreamWrapper), no delta.
            text = getattr(choice, "text", None) if delta is None else getattr(delta, "content", None)
            if isinstance(text, str):
                self.answers.add_text(index, text)
            for call in getattr(delta, "tool_calls", None) or ():
                self.answers.add_tool_call(index, call)
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self.finish_reasons[index] = str(reason)

    def provider_chunk(self, chunk: Any) -> None:
        try:
            for choice in getattr(chunk, "choices", None) or ():
                reason = getattr(choice, "finish_reason", None)
                if reason:
                    self.provider_finish_reasons[getattr(choice, "index", 0) or 0] = str(reason)
        except Exception as exc:  # noqa: BLE001 - a chunk we cannot read costs its facts, not the stream
            report_internal_error("reading a provider's LiteLLM stream chunk", exc)

    def all_finish_reasons(self) -> tuple[str, ...]:
        """One per choice that finished, in choice order: the one LiteLLM gave the program, else the provider's, as
        LiteLLM maps a finish reason (`map_finish_reason`)."""
        reasons = dict(self.finish_reasons)
        if self.provider_finish_reasons.keys() - reasons.keys():
            from litellm.litellm_core_utils.core_helpers import map_finish_reason

            for index, reason in self.provider_finish_reasons.items():
                reasons.setdefault(index, str(map_finish_reason(reason)))
        return tuple(reasons[index] for index in sorted(reasons))

    def end(self, error: BaseException | None = None, *, abandoned: bool = False, closed: bool = False) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._end(error, abandoned or closed, closed and self.closed_by_program())
        except Exception as exc:  # noqa: BLE001
            report_internal_error("LiteLLM stream end", exc)
            self.runtime.end_span(self.frame, answered=False)

    def closed_by_program(self) -> bool:
        """Whether a `close()` of this stream is the program's. Under a Router the program holds the Router's stream,
        whose wrapper closes the attempt's stream when the program closes that one and also when it is collected
        unfinished (docs/litellm-internals.md §4): the program's close only in the first case."""
        parent = self.frame.parent
        return not isinstance(parent, RouterFrame) or parent.stream_closed

    def _end(self, error: BaseException | None, abandoned: bool, closed: bool) -> None:
        frame, runtime = self.frame, self.runtime
        call, texts, extra = self.result()
        if self.from_cache:
            as_cache_hit(call, call.cost_usd)
        if self.first_chunk_s is not None:
            extra[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk_s
        if abandoned:
            extra.update(unfinished_stream(frame.span, closed))
        outputs = (runtime.answer_attributes(texts, frame, call.finish_reasons or None)
                   if frame.content.capture_outputs and error is None else None)
        runtime.finish(frame, call if error is None else None, error, outputs, extra)

    def result(self) -> tuple[LMCall, list[Any], dict[str, Any]]:
        """The call as the stream delivered it, its answers (one per choice), and extra span attributes."""
        frame = self.frame
        call = self.runtime.new_call(frame)
        texts = self.answers.answers()
        extra: dict[str, Any] = {}
        if self.usage is not None:
            usage_into(call, self.usage)
        else:
            messages = (prompt_messages(frame.kwargs.get("prompt")) if frame.operation == TEXT_COMPLETION
                        else frame.kwargs.get("messages"))
            call.input_tokens, call.output_tokens = estimate_tokens(frame, messages, texts)
            call.usage_estimated = True
        call.response_model = non_empty_str(self.response_model)
        call.response_id = non_empty_str(self.response_id)
        call.finish_reasons = self.all_finish_reasons()
        call.cost_usd = litellm_price(frame, call.input_tokens, call.output_tokens, self.usage)
        call.cost_source = "litellm" if call.cost_usd is not None else None
        return call, texts, extra


def unfinished_stream(span: Span, closed: bool) -> dict[str, Any]:
    """The attributes of a span whose stream ended before its end, `closed` by the program or dropped (collected
    unread, its task cancelled); a dropped one's status is also set to ERROR: nobody saw its end."""
    if not closed:
        span.set_status(Status(StatusCode.ERROR, "stream dropped before its end"))
    return {semconv.STREAM_ABANDONED: True}


def traced_stream(stream: Any, recorder: StreamRecorder) -> Any:
    """`stream` itself, reporting to `recorder` (or untouched, with the span ended, if that fails)."""
    return observed_stream(stream, recorder)


def observed_stream(stream: Any, observer: StreamObserver) -> Any:
    """`stream` itself, its class switched so that it reports to `observer`, which it ends however it ends (or
    untouched, with `observer` ended, if that fails)."""
    try:
        provider_chunks = observer.reads_provider_chunks
        traced = _traced_class(type(stream), provider_chunks)
        _recorders[stream] = observer
        stream.__class__ = traced
        weakref.finalize(stream, observer.end, abandoned=True)
    except Exception as exc:  # noqa: BLE001 - an unknown stream type: untraced from here on, never broken
        report_internal_error("tracing a LiteLLM stream", exc)
        observer.end()
        return stream
    if provider_chunks and not hasattr(traced, "chunk_creator"):
        _observe_inner_stream(stream, observer)
    return stream


def _observe_inner_stream(stream: Any, observer: StreamObserver) -> None:
    """Show `observer` the provider's chunks of the LiteLLM stream a text completion's stream reads
    (`inner_chat_stream`): its class switched to one that wraps `chunk_creator` only, its chunks being no chunks of
    the program's. Without one, the span has the finish reasons the program's chunks give."""
    try:
        inner = inner_chat_stream(stream)
        if inner is not None:
            traced = _traced_class(type(inner), True, program_chunks=False)
            _recorders[inner] = observer
            inner.__class__ = traced
    except Exception as exc:  # noqa: BLE001 - costs the other choices' finish reasons, not the stream
        report_internal_error("reading the provider's chunks of a LiteLLM text completion stream", exc)


def inner_chat_stream(stream: Any) -> Any:
    """The `CustomStreamWrapper` beneath a streamed text completion's `TextCompletionStreamWrapper`, which has no
    `chunk_creator` of its own (docs/litellm-internals.md §3): sync, its `completion_stream`; async, the stream
    LiteLLM handed the `_async_streaming` generator that is its `completion_stream` (not started yet when the call
    returns: the argument is a local of the generator's frame). None if neither is there."""
    inner = getattr(stream, "completion_stream", None)
    if inner is not None and not hasattr(inner, "chunk_creator"):
        frame = getattr(inner, "ag_frame", None)  # an async generator's frame (None once it has finished)
        inner = frame.f_locals.get("response") if frame is not None else None
    return inner if hasattr(type(inner), "chunk_creator") else None


def _traced_class(base: type, provider_chunks: bool, program_chunks: bool = True) -> type:
    """The traced subclass of `base`; with `provider_chunks`, one that also shows the observer the provider's chunks
    (a stream that does not need them pays nothing for them); without `program_chunks`, one that shows it only
    those (the stream beneath a text completion's, `inner_chat_stream`)."""
    key = (base, provider_chunks, program_chunks)
    with _classes_lock:
        traced = _traced_classes.get(key)
        if traced is None:
            traced = _traced_classes[key] = _make_traced_class(base, provider_chunks, program_chunks)
        return traced


def _make_traced_class(base: type, provider_chunks: bool, program_chunks: bool) -> type:
    # Any: each is called only from the method defined when the base has it
    base_next: Any = getattr(base, "__next__", None) if program_chunks else None
    base_anext: Any = getattr(base, "__anext__", None) if program_chunks else None
    base_close: Any = getattr(base, "close", None) if program_chunks else None
    base_aclose: Any = getattr(base, "aclose", None) if program_chunks else None
    # LiteLLM's `CustomStreamWrapper.__next__`/`__anext__` pass each chunk the provider sent to it
    base_chunk_creator: Any = getattr(base, "chunk_creator", None) if provider_chunks else None

    # A stream that fails partway raises to the program as it would untraced: without this frame (`_stack.py`).
    def __next__(self: Any) -> Any:
        recorder = _recorders.get(self)
        try:
            if recorder is None:
                return base_next(self)
            with recorder.reading_chunk(StopIteration):
                chunk = base_next(self)
        except BaseException as error:
            drop_own_frame(error, __next__)
            raise
        recorder.chunk(chunk)
        return chunk

    async def __anext__(self: Any) -> Any:
        recorder = _recorders.get(self)
        try:
            if recorder is None:
                return await base_anext(self)
            with recorder.reading_chunk(StopAsyncIteration):
                chunk = await base_anext(self)
        except BaseException as error:
            drop_own_frame(error, __anext__)
            raise
        recorder.chunk(chunk)
        return chunk

    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = _recorders.get(self)
        if recorder is not None and not recorder.reading:
            recorder.end(closed=True)
        return base_close(self, *args, **kwargs)

    async def aclose(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = _recorders.get(self)
        if recorder is not None and not recorder.reading:
            recorder.end(closed=True)
        return await base_aclose(self, *args, **kwargs)

    def chunk_creator(self: Any, chunk: Any) -> Any:
        recorder = _recorders.get(self)
        if recorder is not None:
            recorder.provider_chunk(chunk)
        try:
            return base_chunk_creator(self, chunk=chunk)
        except BaseException as error:
            drop_own_frame(error, chunk_creator)
            raise

    namespace: dict[str, Any] = {"__module__": base.__module__, "__qualname__": base.__qualname__}
    # Only what the base has: a class iterated one way only stays so (`hasattr(stream, "__anext__")` is unchanged).
    for name, base_method, method in (("__next__", base_next, __next__), ("__anext__", base_anext, __anext__),
                                      ("close", base_close, close), ("aclose", base_aclose, aclose),
                                      ("chunk_creator", base_chunk_creator, chunk_creator)):
        if base_method is not None:
            namespace[name] = method
    return type(base.__name__, (base,), namespace)
