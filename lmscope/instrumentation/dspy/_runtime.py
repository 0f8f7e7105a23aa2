"""Span lifecycle for DSPy calls: start a span and its frame, end it with attributes and roll-ups.

Hot path. Attributes are computed only when the span records, contexts are attached by hand (no
generator-based context managers), and every fault inside lmscope is reported and swallowed: the
wrappers in `_wrappers.py` call into here and fall back to the bare DSPy call if starting fails.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from ...telemetry import _semconv as semconv
from ...telemetry._context_attributes import context_attributes
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._lm_call import LMCall
from ...telemetry._lm_vendors import split_route
from ...telemetry._light_span import LightSpan, defer
from ...telemetry._span_context import attach, current_context, detach, with_span
from ...telemetry._span_start import span_starter
from ...telemetry._usage import active_trackers
from ._attributes import content_snapshot, document_attributes, request_parameters
from ._frames import BATCH_ITEM_KEY, FRAME_KEY, OVERRIDES_KEY, LMFrame, ModuleFrame
from ._naming import module_facts, module_path, span_kind
from ._results import lm_call_from_result
from ._settings import SettingsSnapshot, settings_snapshot
from ._span_builders import (lm_end_attributes, lm_start_attributes, module_end_attributes,
                             module_start_attributes)

Step = tuple[Any, object]  # (frame, context token)
LMCallListener = Callable[[LMCall], None]
ModuleListener = Callable[[str, float, "str | None"], None]
"""Called at every module (or container) span end with its module path, duration in s and error type."""

_EMPTY: frozenset[str] = frozenset()
NO_PATH = object()
"""`path_owner` for spans that are not modules (containers without one, tools): they take the parent's path."""
_routes: dict[str, tuple[str | None, str]] = {}


def _route(route: str) -> tuple[str | None, str]:
    parts = _routes.get(route)
    if parts is None:
        parts = _routes[route] = split_route(route)
    return parts


class Runtime:
    """Everything the wrappers share: the tracer, the options that shape attributes, the listeners."""

    def __init__(self, tracer: Tracer, settings: Any, *, capture_content: bool) -> None:
        self.tracer = tracer
        self.start_span = span_starter(tracer)
        self.settings = settings
        self.capture_content = capture_content
        self.lm_call_listeners: list[LMCallListener] = []
        self.module_listeners: list[ModuleListener] = []

    # --- modules and containers ------------------------------------------------------------------
    def start_module(self, module: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, container: bool = False,
                     name: str | None = None, name_suffix: str = "", kind: str | None = None,
                     path_owner: Any = None, extra: Mapping[str, Any] | None = None) -> Step:
        ctx = current_context()
        parent = ctx.get(FRAME_KEY)
        if type(parent) is LMFrame:  # a module run by an LM (rare): attach it to the LM's module
            parent = parent.parent
        owner = None if path_owner is NO_PATH else (module if path_owner is None else path_owner)
        path = module_path(parent, owner) if owner is not None else (parent.path if parent else "")
        if name is None:
            name = path + name_suffix if path else name_suffix.lstrip(".")
        span = self.start_span(name, ctx)
        recording = type(span) is LightSpan or span.is_recording()  # a light span records until it ends
        frame = ModuleFrame(span, path, owner, parent, container, recording)
        if self.module_listeners and (owner is not None or container):  # tools have no module path
            frame.timing = (name, time.perf_counter())
        token = attach(with_span(ctx, span, FRAME_KEY, frame))
        if recording:
            # After the attach, a fault must not escape: the wrapper would run the call without ending the span.
            try:
                cls = type(module)
                kind = kind or span_kind(cls)
                frame.retriever = kind == semconv.KIND_RETRIEVER
                batch_item = ctx.get(BATCH_ITEM_KEY)
                defer(span, module_start_attributes, kind, cls.__name__,
                      name if owner is not None or container else None,  # tools are steps: they have no module path
                      module_facts(module), extra,
                      batch_item[0] if batch_item is not None and batch_item[1] is parent else None,
                      context_attributes(ctx),
                      self._settings(ctx) if parent is None or parent.container else None,
                      _inputs(args, kwargs) if self.capture_content and (args or kwargs) else None)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("module span attributes", exc)
        return frame, token

    def end_module(self, step: Step, output: Any, error: BaseException | None) -> None:
        frame, token = step
        span = frame.span
        try:
            parent = frame.parent
            totals = frame.end(parent if parent is not None and parent.rolls_up else None)
            if type(span) is LightSpan or span.is_recording():  # a light span records until it ends
                documents = content = None
                if error is None and output is not None:
                    if frame.retriever:
                        documents = _documents(output, self.capture_content)
                    if self.capture_content:
                        content = content_snapshot(output)
                defer(span, module_end_attributes, totals, documents, self.capture_content, content)
            if error is not None:
                _record_error(span, error)
            if frame.timing is not None:
                path, started = frame.timing
                duration = time.perf_counter() - started
                error_type = type(error).__name__ if error is not None else None
                for listener in self.module_listeners:
                    listener(path, duration, error_type)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("module span end", exc)
        finally:
            detach(token)
            span.end()

    # --- LM calls --------------------------------------------------------------------------------
    def start_lm(self, lm: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Step:
        ctx = current_context()
        parent = ctx.get(FRAME_KEY)
        if type(parent) is LMFrame:
            parent = parent.parent
        provider, model = _route(str(getattr(lm, "model", "unknown")))
        span = self.start_span(semconv.LM_SPAN_NAME_PREFIX + model, ctx, SpanKind.CLIENT)
        frame = LMFrame(span, parent, lm, model, provider, time.perf_counter(), active_trackers(ctx))
        # Inside our LM span, other instrumentations (OpenInference's LiteLLM one, HTTP clients) stand
        # down through OTel's standard suppression key: one LM span per LM call, whatever else is on.
        token = attach(with_span(ctx, span, FRAME_KEY, frame, _SUPPRESS_INSTRUMENTATION_KEY, True))
        if type(span) is LightSpan or span.is_recording():
            try:  # as in start_module: nothing may escape once the context is attached
                content = None
                if self.capture_content:
                    prompt = kwargs.get("messages") or (args[0] if args else kwargs.get("prompt"))
                    if prompt is not None:
                        content = content_snapshot(prompt)
                # `messages` is not a request parameter (the allowlist never reads it): no filtered copy needed.
                defer(span, lm_start_attributes, model, provider,
                      request_parameters(getattr(lm, "kwargs", None) or {}, kwargs), context_attributes(ctx),
                      self._settings(ctx), content)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("LM span attributes", exc)
        return frame, token

    def end_lm(self, step: Step, output: Any, error: BaseException | None) -> None:
        frame, token = step
        span = frame.span
        try:
            recording = type(span) is LightSpan or span.is_recording()
            listeners = self.lm_call_listeners
            parent = frame.parent
            if frame.result is not None:
                trackers = frame.trackers
                rolls_up = parent is not None and parent.rolls_up
            else:
                trackers, rolls_up = (), False
            # Nobody reads an unsampled call's LMCall unless a listener, a tracker or a recording ancestor does.
            call = self._lm_call(frame, error) if recording or listeners or trackers or rolls_up else None
            if recording:
                captured = self.capture_content and error is None and output is not None
                content = content_snapshot(output) if captured else None
                defer(span, lm_end_attributes, call if frame.result is not None else None, content)
            if error is not None:
                _record_error(span, error)
            if rolls_up:
                parent.add_call(call)
            for usage in trackers:
                usage.record(call)
            for listener in listeners:
                listener(call)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("LM span end", exc)
        finally:
            detach(token)
            span.end()

    def _lm_call(self, frame: LMFrame, error: BaseException | None) -> LMCall:
        duration = time.perf_counter() - frame.started
        module = frame.parent.path if frame.parent is not None else None
        if frame.result is None:
            return LMCall(model=frame.model, provider=frame.provider, duration_s=duration, module_path=module,
                          error_type=type(error).__name__ if error is not None else None)
        call = lm_call_from_result(frame.lm, frame.result, model=frame.model, provider=frame.provider,
                                   cache_layer=frame.cache_layer, stored_record=frame.stored_record,
                                   duration_s=duration, module_path=module)
        call.cache_used = bool(getattr(frame.call, "cache", False))  # DSPy's PreparedCall.cache, seen by finalize
        if error is not None:  # raised after DSPy finished the call: billed all the same
            call.error_type = type(error).__name__
        return call

    def _settings(self, ctx: Mapping[Any, Any]) -> SettingsSnapshot:
        return settings_snapshot(self.settings, ctx.get(OVERRIDES_KEY) or _EMPTY)


def _passages(output: Any) -> Any:
    if isinstance(output, (list, tuple)):
        return output
    try:
        return output["passages"]
    except (KeyError, TypeError, IndexError):
        return getattr(output, "passages", None)


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A module call's captured input: its keyword arguments, positional ones under "args".

    `kwargs` is the wrapper's own `**kwargs` dict (the call itself got a copy): when it holds only immutable
    scalars it is its own snapshot."""
    if not args and _SCALAR_TYPES.issuperset(map(type, kwargs.values())):
        return kwargs
    return content_snapshot({"args": args, **kwargs} if args else kwargs)


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _documents(output: Any, capture_content: bool) -> tuple[str, ...] | dict[str, Any] | None:
    """What a retriever returned, for `module_end_attributes`: a list of strings as a tuple (immutable), anything
    else as its document attributes, built now."""
    passages = _passages(output)
    if not isinstance(passages, (list, tuple)):
        return None
    if _STR.issuperset(map(type, passages)):
        return tuple(passages)
    return document_attributes(passages, capture_content)


_STR = frozenset({str})


def _record_error(span: Any, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)
