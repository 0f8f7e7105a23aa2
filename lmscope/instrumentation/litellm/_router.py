"""The span of one `litellm.Router` call: `router {model group}`, over the deployment attempts it made.

The Router makes each attempt through `litellm.completion` / `acompletion` / `embedding` / `aembedding`, which
lmscope traces as LM spans (docs/litellm-internals.md §4). Those become the children of the router span, failed
attempts, retries and fallbacks included. The router span is a CHAIN span that carries the roll-ups a DSPy module
span carries (`lmscope.lm.calls`, `lmscope.usage.*`, `lmscope.cost.total_usd`) and never `gen_ai.usage.*`: only the
attempts count as LM calls (`_tree.is_lm_call`), in reports, `track()` and metrics alike. Its status is ERROR only
when the call failed as the app sees it (the Router raised, or the stream it returned raised while the app read it):
an attempt that failed before a fallback answered leaves it OK. A returned stream keeps the span open until it ends.

A Router endpoint called while a router span is current is one of the Router's own calls (a routing strategy's
embedding, a judge, a mirrored request): it gets no router span of its own, and its provider calls count as
attempts of the call it serves.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, set_span_in_context

from ...telemetry import _semconv as semconv
from ...telemetry._context_attributes import context_attributes
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._phase import current_phase
from .._errors import record_error
from .._stack import WrappedCall
from ..dspy._attributes import rollup_attributes
from ..dspy._frames import FRAME_KEY, ModuleFrame
from ._router_frame import RouterFrame
from ._spans import LiteLLMRuntime
from ._streams import StreamObserver, observed_stream, unfinished_stream

ROUTER_ENDPOINTS = (("completion", False), ("acompletion", True), ("embedding", False), ("aembedding", True))
"""The Router methods that get a router span: (name, async)."""


def endpoint_owner(router_class: type, name: str) -> type | None:
    """The class whose own dict holds the Router's method `name`: the Router itself, or, in LiteLLM 1.110, the core
    class the Router facade serves its endpoints from (a patch on the facade would land there anyway); None if
    neither (docs/litellm-internals.md §4)."""
    for cls in router_class.__mro__:
        if name in vars(cls):
            return cls
    method = getattr(router_class, name, None)
    module = sys.modules.get(getattr(method, "__module__", None) or "")
    owner = getattr(module, str(getattr(method, "__qualname__", "")).rpartition(".")[0], None)
    return owner if isinstance(owner, type) and vars(owner).get(name) is method else None


def _start(runtime: LiteLLMRuntime, endpoint: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RouterFrame | None:
    """The router span, made current; None when instrumentation is off here (or lmscope has left: `retired`) or a
    router span is already current."""
    try:
        if runtime.retired or not is_instrumentation_enabled():
            return None
        ctx = otel_context.get_current()
        parent = ctx.get(FRAME_KEY)
        if isinstance(parent, RouterFrame):
            return None
        module = parent if isinstance(parent, ModuleFrame) else None
        model_group, redacted = runtime.content.name(  # a model name may hold a key: scrubbed, as the calls' are
            str(kwargs["model"] if "model" in kwargs else args[0] if args else "unknown"))
        attributes: dict[str, Any] = {semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.PHASE: current_phase(ctx),
                                      semconv.ROUTER_MODEL_GROUP: model_group, semconv.ROUTER_ENDPOINT: endpoint}
        if redacted:
            attributes[semconv.SCRUBBED] = True
        scoped = context_attributes(ctx, runtime.content)
        if scoped:
            attributes.update(scoped)
        span = runtime.tracer.start_span(semconv.ROUTER_SPAN_NAME_PREFIX + model_group, ctx, SpanKind.INTERNAL,
                                         attributes)
        frame = RouterFrame(span, module, span.is_recording())
        frame.context = otel_context.set_value(FRAME_KEY, frame, set_span_in_context(span, ctx))
        frame.token = otel_context.attach(frame.context)
        return frame
    except Exception as exc:  # noqa: BLE001 - the call runs untraced
        report_internal_error("LiteLLM router span start", exc)
        return None


def _leave(frame: RouterFrame) -> None:
    if frame.token is not None:
        otel_context.detach(frame.token)
        frame.token = None


def _returned(runtime: LiteLLMRuntime, frame: RouterFrame, result: Any, error: BaseException | None) -> Any:
    """The Router returned `result` (or raised `error`): end the span now, or, for a stream (LiteLLM's
    `CustomStreamWrapper`, sync and async in one class), when the stream has ended. Returns `result`: a stream is
    the same object, observed (`_streams.observed_stream`)."""
    try:
        _leave(frame)
        frame.on_done = functools.partial(_end, runtime, frame)
        stream = error is None and hasattr(result, "__next__") and hasattr(result, "__anext__")
        frame.returned(error, stream)
        if stream:
            return observed_stream(result, RouterStream(frame))
    except Exception as exc:  # noqa: BLE001
        report_internal_error("LiteLLM router span end", exc)
    return result


class RouterStream(StreamObserver):
    """The stream a Router call returned, as its router span sees it: while the app reads a chunk the router span is
    current, so that a retry or fallback the Router starts inside its stream is an attempt under it; the stream's
    end, error, close or collection ends the router call (its chunks are the attempts' LM spans' to record). Closed
    or dropped before its end, the router span says so as a plain stream's span does (`unfinished_stream`)."""

    def __init__(self, frame: RouterFrame) -> None:
        self.frame = frame
        self._ended = False
        self._lock = threading.Lock()

    @contextmanager
    def while_reading(self) -> Iterator[None]:
        token = otel_context.attach(self.frame.context) if self.frame.context is not None else None
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)

    def end(self, error: BaseException | None = None, *, abandoned: bool = False, closed: bool = False) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self.frame.stream_ended(error, abandoned or closed, closed)


def _end(runtime: LiteLLMRuntime, frame: RouterFrame) -> None:
    span, error = frame.span, frame.error
    try:
        parent = frame.parent
        totals = frame.end(parent if parent is not None and parent.rolls_up else None)
        if span.is_recording():
            attributes = rollup_attributes(totals)
            attributes[semconv.ROUTER_ATTEMPTS] = frame.attempts
            if frame.served is not None:
                attributes[semconv.ROUTER_MODEL] = runtime.content.name(frame.served)[0]  # as the LM span's
            if frame.unfinished:  # what the span of a plain LiteLLM stream says
                attributes.update(unfinished_stream(span, frame.stream_closed))
            span.set_attributes(attributes)
            if error is not None:
                record_error(span, error, runtime.content)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("LiteLLM router span end", exc)
    finally:
        span.end()


class _RouterCall(WrappedCall):
    """The router span around one endpoint call: `with _RouterCall(...) as call: call.result = original(...)`. Leaving
    the block ends the span (or hands it to the stream's end)."""

    __slots__ = ("endpoint", "frame", "request", "result", "runtime")

    def __init__(self, runtime: LiteLLMRuntime, endpoint: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 wrapper: Callable[..., Any]) -> None:
        super().__init__(wrapper)
        self.runtime, self.endpoint, self.request = runtime.current(), endpoint, (args, kwargs)
        self.frame: RouterFrame | None = None
        self.result: Any = None

    def __enter__(self) -> _RouterCall:
        self.frame = _start(self.runtime, self.endpoint, *self.request)
        return self

    def leaving(self, error: BaseException | None) -> None:
        if self.frame is not None:
            self.result = _returned(self.runtime, self.frame, self.result, error)


def traced_router_call(runtime: LiteLLMRuntime, original: Callable[..., Any], endpoint: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(router: Any, *args: Any, **kwargs: Any) -> Any:
        with _RouterCall(runtime, endpoint, args, kwargs, wrapper) as call:
            call.result = original(router, *args, **kwargs)
        return call.result

    return wrapper


def traced_async_router_call(runtime: LiteLLMRuntime, original: Callable[..., Any],
                             endpoint: str) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(router: Any, *args: Any, **kwargs: Any) -> Any:
        with _RouterCall(runtime, endpoint, args, kwargs, wrapper) as call:
            call.result = await original(router, *args, **kwargs)
        return call.result

    return wrapper
