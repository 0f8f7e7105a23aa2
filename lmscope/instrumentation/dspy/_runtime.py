"""Span lifecycle for DSPy calls: start a span and its frame, end it with attributes and roll-ups.

Hot path, and public OpenTelemetry API only. A span's attributes are built once, where their values are known:
the start set goes to `tracer.start_span(..., attributes=...)` (so samplers and processors' `on_start` see it),
the end set to one `span.set_attributes` just before `span.end()`. Nothing is built for a span that does not
record. A fault inside lmscope never reaches the program (`report_internal_error`): the wrappers in `_wrappers.py`
call into here and fall back to the bare DSPy call if starting fails, and a failing builder costs its attributes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracer,
    Span,
    SpanKind,
    Tracer,
    get_current_span,
)

from ...telemetry import _semconv as semconv
from ...telemetry._attributes_on_export import AttributesLater, Later, copied_messages, resolver, set_on_export
from ...telemetry._content import ContentPolicy
from ...telemetry._context_attributes import context_attributes
from ...telemetry._internal_errors import report_internal_error
from ...telemetry._lm_call import LMCall
from ...telemetry._lm_vendors import split_route
from ...telemetry._memo import BoundedMemo
from ...telemetry._one_step_context import with_span
from ...telemetry._phase import current_phase, phase_attributes, with_phase
from ...telemetry._recorded_span import RecordedSpan
from ...telemetry._usage import active_trackers
from .._callers import called_from_callback
from .._errors import record_error
from .._lm_span_view import lm_call_context
from .._providers import provider_given
from .._setup import EvaluationListener, LMCallListener, ModuleListener
from ._attributes import json_snapshot, request_parameters, safe_str
from ._frames import (
    ADAPTER_KEY,
    BATCH_ITEM_KEY,
    FRAME_KEY,
    OVERRIDES_KEY,
    OWN_SUPPRESSION_KEY,
    BatchItem,
    LMFrame,
    ModuleFrame,
)
from ._lm_children import gives_way
from ._module_paths import module_path
from ._naming import kind_is_default, module_facts, positional_names, span_kind
from ._neighbours import Neighbours
from ._providers import answered_by
from ._results import lm_call_from_result
from ._retries import requests_made
from ._settings import NO_OVERRIDES, dspy_cache_tier_on, settings_snapshot
from ._span_builders import (
    encoded_content,
    lm_end_attributes,
    lm_input_attributes,
    lm_output_attributes,
    lm_start_attributes,
    module_end_attributes,
    module_output_attributes,
    module_start_attributes,
)

Attributes = dict[str, Any]

NO_PATH = object()
"""`path_owner` for spans that are not modules (containers without one, tools): they take the parent's path."""
_route: BoundedMemo[str, tuple[str | None, str]] = BoundedMemo(split_route)
"""_route(lm.model) -> (provider, model): `openai/gpt-4o-mini` -> ("openai", "gpt-4o-mini")."""


class Runtime:
    """Everything the wrappers share: the tracer, the options that shape attributes, the listeners."""

    def __init__(self, tracer: Tracer, settings: Any, *, content: ContentPolicy) -> None:
        self.tracer = tracer
        self.resolve = resolver(tracer)
        """(the tracer the next span goes through, whether its attributes are stored on export)."""
        self.settings = settings
        self.content = content
        self.lm_call_listeners: list[LMCallListener] = []
        self.module_listeners: list[ModuleListener] = []
        self.evaluation_listeners: list[EvaluationListener] = []
        self.neighbours: Neighbours | None = None
        """Looks for other DSPy instrumentations at each top-level span (`_neighbours.py`)."""
        self.retired = False
        """Set when lmscope unpatches DSPy. A wrapper that another tool's patch keeps calling (MLflow's patch of
        `Evaluate.__call__` made after lmscope's holds it in a closure) then passes calls through."""

    def __reduce__(self) -> tuple[Callable[[], Runtime], tuple[()]]:
        """Pickled as a reference to the runtime in force where it is loaded. lmscope's wrapper of a method in a
        class of the app's own (an LM's `__call__`, an optimizer's `compile`) holds this runtime, and cloudpickle
        copies a class defined in `__main__` or a notebook by value, its methods with it (MLflow's `log_model`,
        Ray, joblib): the copy then traces where lmscope is on, and passes calls through where it is not."""
        return live_runtime, ()

    # --- modules and containers ------------------------------------------------------------------
    def start_module(self, module: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, container: bool = False,
                     name: str | None = None, name_suffix: str = "", kind: str | None = None,
                     path_owner: Any = None, extra: Mapping[str, Any] | None = None,
                     phase: str | None = None, method: str = "forward") -> ModuleFrame:
        """The span of a module (or container, tool) call, made current; `phase` is the one this call enters, `method`
        the one the call runs (`aforward` under `acall`), whose parameters name positional arguments."""
        ctx = otel_context.get_current()
        if phase is not None:
            ctx = with_phase(phase, ctx)
        parent = calling_module(ctx)
        if parent is None and self.neighbours is not None:
            self.neighbours.look()
        owner = None if path_owner is NO_PATH else (module if path_owner is None else path_owner)
        path, aliases = module_path(parent, owner) if owner is not None else (parent.path if parent else "", ())
        span_name = name if name is not None else (path + name_suffix if path else name_suffix.lstrip("."))
        cls = type(module)
        span_kind_name = kind or span_kind(cls)
        has_path = owner is not None or container  # tools are steps: no module path
        batch_item = ctx.get(BATCH_ITEM_KEY)
        batch_index = batch_item.index if type(batch_item) is BatchItem and batch_item.launcher is parent else None
        # Counted whether or not the span records, so that sampled spans still number their calls right; a batch item
        # is placed by its lmscope.batch.index instead (worker threads start items in no fixed order).
        call_index = parent.next_call_index(span_name) if has_path and parent is not None and batch_index is None \
            else None
        inputs = _inputs(module, args, kwargs, method) if self.content.capture_inputs and (args or kwargs) else None
        tracer, later = self.resolve()  # later: attributes stored on export (`_attributes_on_export.py`)
        # Builders as `Later` tuples, not closures: a closure makes a cell of each variable it reads, here a dozen
        # objects a module call more, and slower reads of them in the whole function.
        build = Later((_module_start_values, self, module, parent, () if container else aliases, span_kind_name,
                       cls.__name__, span_name if has_path else None, call_index, extra, batch_index, ctx,
                       None if later else inputs))
        content = None if inputs is None else Later((_module_input, inputs, self.content))
        span = self._start_span(tracer, span_name, ctx, SpanKind.INTERNAL, parent, build, "module span attributes",
                                later, content)
        recording = span.is_recording()
        frame = ModuleFrame(span, path, owner, parent, container, recording)
        frame.later = later
        frame.retriever = recording and span_kind_name == semconv.KIND_RETRIEVER
        frame.kind_by_default = kind is None and not container and kind_is_default(cls)
        if self.module_listeners and has_path:
            frame.timing = (span_name, time.perf_counter(), current_phase(ctx))
        frame.token = otel_context.attach(with_span(span, ctx, {FRAME_KEY: frame}))
        return frame

    def end_module(self, frame: ModuleFrame, output: Any, error: BaseException | None) -> None:
        span = frame.span
        try:
            parent = frame.parent
            totals = frame.end(parent if parent is not None and parent.rolls_up else None)
            if span.is_recording():
                returned = error is None and output is not None
                retriever = frame.retriever
                if returned and not retriever and frame.kind_by_default and not frame.asked_lm \
                        and _looks_retrieved(output):
                    retriever = True  # a user's retriever, known by what it returned: say so before the span ends
                    span.set_attribute(semconv.SPAN_KIND, semconv.KIND_RETRIEVER)
                later = frame.later
                content_later = later and returned and self.content.capture_outputs  # documents built with it
                documents = _documents(frame, output) if returned and retriever else None
                _set_attributes(span, "module span end attributes", later, module_end_attributes, totals,
                                None if content_later else documents, self.content,
                                output if returned and self.content.capture_outputs and not later else None,
                                content=Later((_module_output, output, documents, self.content))
                                if content_later else None, fixed=content_later or documents is None)
            if error is not None:
                record_error(span, error, self.content)
            if frame.timing is not None:
                path, started, phase = frame.timing
                duration = time.perf_counter() - started
                error_type = type(error).__name__ if error is not None else None
                for listener in self.module_listeners:
                    listener(path, duration, error_type, phase)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("module span end", exc)
        finally:
            if frame.token is not None:
                otel_context.detach(frame.token)
            _end(span)

    # --- LM calls --------------------------------------------------------------------------------
    def start_lm(self, lm: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> LMFrame:
        ctx = otel_context.get_current()
        parent = calling_module(ctx)
        if parent is None and self.neighbours is not None:
            self.neighbours.look()
        provider, model = _route(safe_str(getattr(lm, "model", "unknown")))
        if provider is None:  # a bare model name: the provider the caller named, else the answer's (`_lm_call`)
            provider = provider_given(kwargs) or provider_given(getattr(lm, "kwargs", None))

        prompt = None
        if self.content.capture_inputs:
            prompt = kwargs.get("messages") or (args[0] if args else kwargs.get("prompt"))
        tracer, later = self.resolve()  # later: attributes stored on export (`_attributes_on_export.py`)
        content_later = later and bool(prompt)
        # DSPy sends a text LM's messages as one prompt to the legacy completions API (docs/dspy-internals.md §4)
        operation = semconv.GEN_AI_OPERATION_TEXT_COMPLETION if getattr(lm, "model_type", None) == "text" \
            else semconv.GEN_AI_OPERATION_CHAT
        name = f"{operation} {self.content.name(model)[0]}"  # a model name may hold a key: scrubbed
        build = Later((_lm_start_values, self, lm, kwargs, ctx, operation, model, provider,
                       None if content_later else prompt))  # a tuple, not a closure: see `start_module`
        content = Later((_lm_input, prompt, lm, kwargs, self.content)) if content_later else None
        span = self._start_span(tracer, name, ctx, SpanKind.CLIENT, parent, build, "LM span attributes", later,
                                content)
        frame = LMFrame(span, parent, lm, model, provider, time.perf_counter(), active_trackers(ctx))
        frame.later = later
        frame.operation = operation
        frame.phase = current_phase(ctx)
        outer = ctx.get(FRAME_KEY)
        if type(outer) is LMFrame:  # a custom LM calling another LM: this call is one of its (`_lm_children.py`)
            frame.outer = outer
            frame.answers_outer = not called_from_callback(sys._getframe(1))
        # Inside the call: other instrumentations suppressed, a read-only view of our span (`_lm_span_view.py`).
        frame.token = otel_context.attach(lm_call_context(span, ctx, {OWN_SUPPRESSION_KEY: True, FRAME_KEY: frame}))
        return frame

    def end_lm(self, frame: LMFrame, output: Any, error: BaseException | None) -> None:
        span = frame.span
        try:
            recording = span.is_recording()
            # The LM's own code made the call's requests, counted on child spans: this span counts none of it.
            children = frame.children if frame.requests_in_children and gives_way(frame) else None
            counted = children is None
            listeners = self.lm_call_listeners if counted else ()
            parent = frame.parent
            finished = counted and frame.result is not None  # DSPy's `finalize` saw the call's result
            trackers = frame.trackers if finished else ()
            rolls_up = finished and parent is not None and parent.rolls_up
            outer = frame.outer if finished else None
            # Nobody reads an unsampled call's LMCall unless a listener, a tracker or a recording ancestor does.
            read = recording or listeners or trackers or rolls_up or outer is not None
            call = self._lm_call(frame, error) if read else None
            if recording:
                captured = self.content.capture_outputs and error is None and output is not None
                # A provider known only from the answer is not among the start attributes.
                answered = call.provider if call is not None and frame.provider is None else None
                content_later = captured and frame.later
                finished_call = call if frame.result is not None else None
                reasons = finished_call.finish_reasons if finished_call is not None else None
                _set_attributes(span, "LM span end attributes", frame.later, lm_end_attributes, finished_call,
                                output if captured and not content_later else None, self.content, answered, children,
                                content=Later((_lm_output, output, reasons, self.content)) if content_later else None,
                                fixed=children is None)
                if frame.resent:  # requests that failed were sent again (`_retries.py`)
                    span.set_attribute(semconv.LM_REQUESTS, requests_made(frame, error is not None))
            if error is not None:
                record_error(span, error, self.content)
                if recording and _stream_left(error, self.settings):
                    span.set_attribute(semconv.STREAM_ABANDONED, True)
            if call is not None:
                if rolls_up and parent is not None:
                    parent.add_call(call)
                for usage in trackers:
                    usage.record(call)
                for listener in listeners:
                    listener(call)
                if outer is not None:
                    outer.add_child(call, request=frame.answers_outer)
            if children is not None and frame.outer is not None:  # gave way: its children are the outer call's too
                frame.outer.add_children(children, requests=frame.answers_outer)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("LM span end", exc)
        finally:
            if frame.token is not None:
                otel_context.detach(frame.token)
            _end(span)

    def _lm_call(self, frame: LMFrame, error: BaseException | None) -> LMCall:
        duration = time.perf_counter() - frame.started
        module = frame.parent.path if frame.parent is not None else None
        if frame.result is None:
            return LMCall(model=frame.model, provider=frame.provider, duration_s=duration, module_path=module,
                          error_type=type(error).__name__ if error is not None else None, phase=frame.phase,
                          operation=frame.operation)
        call = lm_call_from_result(frame.lm, frame.result, model=frame.model, provider=frame.provider,
                                   cache_layer=frame.cache_layer, stored_record=frame.stored_record,
                                   duration_s=duration, module_path=module)
        if frame.provider is None:  # a bare model name (`_providers.py`)
            call.provider = answered_by(frame.lm, frame.result, call.engine)
        call.phase, call.operation = frame.phase, frame.operation
        call.usage_estimated = call.engine == "litellm" and not call.cache_hit \
            and _streamed_without_usage(frame.lm, self.settings)
        # DSPy's PreparedCall.cache, seen by finalize, and a tier left on by `dspy.configure_cache(...)`: otherwise
        # DSPy's Cache.get/put do nothing, and the call did not use the cache (span, roll-ups and metrics agree).
        call.cache_used = bool(getattr(frame.call, "cache", False)) and dspy_cache_tier_on()
        if error is not None:  # raised after DSPy finished the call: billed all the same
            call.error_type = type(error).__name__
        return call

    # --- shared ----------------------------------------------------------------------------------
    def _start_span(self, tracer: Tracer, name: str, ctx: Context, kind: SpanKind, parent: ModuleFrame | None,
                    build: Callable[[], Callable[[], Attributes]], where: str, later: bool,
                    content: Callable[[], AttributesLater] | None = None) -> Span:
        """`tracer.start_span` in `ctx`, with the start attributes `build()` returns if the span records.

        Whether it will record is known only once it has started, and the attributes should be there at the start
        (samplers and processors' `on_start` see them). So they are built up front when the span will most likely
        record: at the top of a program, or under a module span that records (ParentBased samplers, the SDK's
        default, follow the parent). Under one that does not, they are built only if the sampler decides otherwise,
        and set right after the start. A top-level span is not built for either when the tracer's sampler is one of
        the SDK's fixed ones that drops it whatever its attributes say (`_may_sample`).
        """
        if later:  # nobody reads them before lmscope's exporters: stored there (`_attributes_on_export.py`)
            # The start attributes are assembled on export from the values `build()` takes now, the captured content
            # from the copy `content()` takes now.
            try:
                span = tracer.start_span(name, ctx, kind)
            except Exception as exc:  # noqa: BLE001 - lmscope's provider: its sampler or our own processors raised
                report_internal_error("starting a span", exc)
                return NonRecordingSpan(get_current_span(ctx).get_span_context())
            if span.is_recording():
                # The phase after the content, where the call sets it.
                _store_on_export(span, where, _assembly(build, where), content, phase_attributes(current_phase(ctx)))
            return span
        likely = parent.span.is_recording() if parent is not None else _may_sample(tracer, ctx)
        attributes = _built(build, where, ctx) if likely else None
        try:
            span = tracer.start_span(name, ctx, kind, attributes)
        except Exception as exc:  # noqa: BLE001 - the SDK calls every processor's on_start in here, the app's too
            report_internal_error("starting a span (a span processor or sampler raised; the span is not recorded)",
                                  exc)
            # A stand-in that records nothing: the call runs on, and its child spans hang under this span's parent.
            return NonRecordingSpan(get_current_span(ctx).get_span_context())
        if attributes is None and span.is_recording():
            span.set_attributes(_built(build, where, ctx))
        return span

    def _settings(self, ctx: Context, lm: Any = None) -> Callable[[], Attributes]:
        """`lmscope.settings.*` of the effective settings, read now and built when called (`settings_snapshot`); an
        LM span passes its `lm`, which they then describe."""
        overrides = ctx.get(OVERRIDES_KEY)
        return settings_snapshot(self.settings, overrides if isinstance(overrides, dict) else NO_OVERRIDES, lm,
                                 policy=self.content)


def live_runtime() -> Runtime:
    """The runtime of the DSPy instrumentation in force in this process; where there is none, a retired one, whose
    wrappers pass every call through."""
    from . import DSPyInstrumentor  # this module is imported by it

    runtime = DSPyInstrumentor().runtime
    return _retired_runtime() if runtime is None else runtime


@functools.cache
def _retired_runtime() -> Runtime:
    """One stand-in for every wrapper that outlived lmscope (a held name calls `live_runtime` at each call)."""
    runtime = Runtime(NoOpTracer(), None, content=ContentPolicy.capturing(False))
    runtime.retired = True
    return runtime


def _may_sample(tracer: Any, ctx: Context) -> bool:
    """False when a span started in `ctx` is certainly dropped, whatever its attributes: the tracer's `sampler` (an
    SDK tracer's public attribute; `FollowingTracer` passes on the one it uses) is the SDK's `ALWAYS_OFF`, or
    `DEFAULT_ON`/`DEFAULT_OFF` (`parentbased_always_on`, the SDK's default, and `parentbased_always_off`) under a
    parent span that is not sampled, or `DEFAULT_OFF` with no parent. These are the SDK's own objects, compared by
    identity: none of them reads attributes. Any other sampler (or tracer) may: True. The SDK is not imported here;
    without it loaded, no tracer can hold one of its samplers."""
    sampling = sys.modules.get("opentelemetry.sdk.trace.sampling")
    if sampling is None:
        return True
    sampler = getattr(tracer, "sampler", None)
    if sampler is sampling.ALWAYS_OFF:
        return False
    if sampler is not sampling.DEFAULT_ON and sampler is not sampling.DEFAULT_OFF:
        return True
    parent = get_current_span(ctx).get_span_context()
    if parent.is_valid:
        return parent.trace_flags.sampled
    return sampler is sampling.DEFAULT_ON


def calling_module(ctx: Context) -> ModuleFrame | None:
    """The frame of the module a call runs in; a module run by an LM (rare) belongs to the LM's module."""
    frame = ctx.get(FRAME_KEY)
    if type(frame) is LMFrame:
        return frame.parent
    return frame if type(frame) is ModuleFrame else None


def _end(span: Span) -> None:
    """`span.end()`, which runs every processor's `on_end` (the app's too): one that raises must not fail the call."""
    try:
        span.end()
    except Exception as exc:  # noqa: BLE001
        report_internal_error("ending a span (a span processor raised; processors after it missed the span)", exc)


def _assembly(build: Callable[[], Callable[[], Attributes]], where: str) -> Callable[[], Attributes]:
    """`build()`: the values a span's start attributes are made of, taken now, and the assembly of them; a builder's
    fault costs its attributes, not the span."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001
        report_internal_error(where, exc)
        return dict


def _built(build: Callable[[], Callable[[], Attributes]], where: str, ctx: Context) -> Attributes:
    """A span's start attributes, its phase among them."""
    try:
        attributes = _assembly(build, where)()
    except Exception as exc:  # noqa: BLE001 - a builder's fault costs its attributes, not the span
        report_internal_error(where, exc)
        attributes = {}
    attributes[semconv.PHASE] = current_phase(ctx)
    return attributes


_NOTHING: Attributes = {}
"""No attributes (never changed)."""


def _store_on_export(span: Span, where: str, attributes: AttributesLater,
                     content: Callable[[], AttributesLater] | None, after: AttributesLater = _NOTHING) -> None:
    """Hand `attributes`, the span's captured content and `after` to lmscope's exporters, in that order (the order
    the call sets them in): `content()` takes the copy it needs now, on the program's thread, and returns the
    builder that runs on export. A fault costs the content only."""
    prepared: AttributesLater = _NOTHING
    if content is not None:
        try:
            prepared = content()
        except Exception as exc:  # noqa: BLE001
            report_internal_error(where, exc)
    if type(span) is RecordedSpan:  # what `set_on_export` does with it, one call less on every span
        span.hand_over((attributes, prepared, after))
    else:
        set_on_export(span, attributes, prepared, after)


def _module_start_values(runtime: Runtime, module: Any, parent: ModuleFrame | None, aliases: tuple[str, ...],
                         kind: str, class_name: str, path: str | None, call_index: int | None,
                         extra: Mapping[str, Any] | None, batch_index: int | None, ctx: Context,
                         inputs: Any) -> Callable[[], Attributes]:
    """What a module span's start attributes are made of, taken when it starts recording, and their assembly."""
    signature, compiled, demos = module_facts(module)
    return Later((module_start_attributes, kind, class_name, path, aliases, call_index, signature, compiled, demos,
                  extra, batch_index, context_attributes(ctx, runtime.content),
                  runtime._settings(ctx) if parent is None or parent.container else None, inputs, runtime.content))


def _module_input(inputs: Any, policy: ContentPolicy) -> AttributesLater:
    """A module's captured input, copied now, encoded on export."""
    return Later((encoded_content, semconv.INPUT_VALUE, json_snapshot(inputs), policy))


def _module_output(output: Any, documents: Any, policy: ContentPolicy) -> AttributesLater:
    """A module's captured output and a retriever's documents, copied now, built on export."""
    return Later((module_output_attributes, json_snapshot(output), copied_messages(documents), policy))


def _lm_start_values(runtime: Runtime, lm: Any, kwargs: Mapping[str, Any], ctx: Context, operation: str, model: str,
                     provider: str | None, prompt: Any) -> Callable[[], Attributes]:
    """What an LM span's start attributes are made of, taken when it starts recording (`prompt`: None when its
    content is built on export), and their assembly."""
    # `messages` is not a request parameter (the allowlist never reads it): no filtered copy needed.
    parameters = request_parameters(getattr(lm, "kwargs", None) or {}, kwargs)
    return Later((_lm_start_attributes, operation, ctx.get(ADAPTER_KEY), model, provider, parameters,
                  context_attributes(ctx, runtime.content), runtime._settings(ctx, lm), prompt, runtime.content,
                  _tools(lm, kwargs, prompt)))


def _lm_input(prompt: Any, lm: Any, kwargs: Mapping[str, Any], policy: ContentPolicy) -> AttributesLater:
    """An LM call's prompt and the tools it offered, copied now, built on export."""
    return Later((lm_input_attributes, copied_messages(prompt), copied_messages(_tools(lm, kwargs, prompt)), policy))


def _lm_output(output: Any, reasons: Any, policy: ContentPolicy) -> AttributesLater:
    """An LM call's answers, copied now, built on export."""
    return Later((lm_output_attributes, copied_messages(output), reasons, policy))


def _lm_start_attributes(operation: str, adapter: Any, *args: Any) -> Attributes:
    """`lm_start_attributes(*args)`, with the operation when it is not a chat and the adapter DSPy fell back to
    (`adapter`: its class and the one it replaced, when one did)."""
    attributes = lm_start_attributes(*args)
    if operation != semconv.GEN_AI_OPERATION_CHAT:
        attributes[semconv.GEN_AI_OPERATION_NAME] = operation
    if type(adapter) is tuple:
        attributes[semconv.ADAPTER_NAME], attributes[semconv.ADAPTER_FALLBACK_FROM] = adapter
    return attributes


def _tools(lm: Any, kwargs: Mapping[str, Any], prompt: Any) -> Any:
    """The tools an LM call offered, recorded with its prompt (none without one)."""
    return kwargs.get("tools") or (getattr(lm, "kwargs", None) or {}).get("tools") if prompt else None


def _set_attributes(span: Span, where: str, later: bool, build: Callable[..., Attributes], *args: Any,
                    content: Callable[[], AttributesLater] | None = None, fixed: bool = False) -> None:
    """`span.set_attributes(build(*args))`, or stored on export (`later`) with the captured `content` (see
    `_store_on_export`); a builder's fault costs its attributes, not the span. `fixed`: nothing in `args` changes
    any more (no content, no object the program still holds), so `build` itself may run on export."""
    if later and fixed:
        _store_on_export(span, where, Later((build, *args)), content)
        return
    try:
        attributes = build(*args)
    except Exception as exc:  # noqa: BLE001
        report_internal_error(where, exc)
        attributes = {}
    if later:
        _store_on_export(span, where, attributes, content)
    else:
        span.set_attributes(attributes)


def _inputs(module: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], method: str) -> Any:
    """A module call's captured input: its arguments by the names its `method` (`forward`, `aforward`) gives them
    (`retrieve(question)` as `{"query": ...}`), positional ones it does not name under "args" ("*args" if it names
    one `args`)."""
    if not args:
        return kwargs
    names = positional_names(module, method)
    inputs: dict[str, Any] = dict(zip(names, args, strict=False))
    if len(args) > len(names):
        inputs["*args" if "args" in names else "args"] = args[len(names):]
    inputs.update(kwargs)
    return inputs


_NO_FIELDS: Mapping[str, Any] = {}


def _passages(output: Any) -> Any:
    """What a retriever returned: the output itself if it is a list, else its `passages`; with the corpus `indices`
    (and `scores`) `dspy.retrievers.Embeddings` returns next to them, as documents with that id and score.
    `dspy.retrievers.DatabricksRM` names them otherwise: `docs`, `doc_ids`, and each one's `score` among its
    `extra_columns`."""
    if isinstance(output, (list, tuple)):
        return output
    try:
        passages = output["passages"]
    except (KeyError, TypeError, IndexError):
        passages = getattr(output, "passages", None)
    store = getattr(output, "__dict__", _NO_FIELDS).get("_store")
    if type(store) is not dict:
        return passages
    if passages is None and isinstance(store.get("docs"), list):
        columns = store.get("extra_columns")
        scores = [row.get("score") if isinstance(row, Mapping) else None for row in columns] \
            if isinstance(columns, list) else None
        return _identified(store["docs"], _sequence(store.get("doc_ids")), scores)
    return _identified(passages, _sequence(store.get("indices")), _sequence(store.get("scores")))


def _identified(passages: Any, ids: Sequence[Any] | None, scores: Sequence[Any] | None) -> Any:
    """`passages` as documents with the id (and score) the retriever gave each one, when it gave one to every one."""
    if not isinstance(passages, list) or ids is None or len(ids) != len(passages):
        return passages
    scores = scores if scores is not None and len(scores) == len(passages) else [None] * len(passages)
    return [{"id": doc_id, "content": text, **({"score": score} if score is not None else {})}
            for text, doc_id, score in zip(passages, ids, scores, strict=True)]


def _sequence(value: Any) -> list[Any] | tuple[Any, ...] | None:
    """Corpus indices or scores as a retriever returned them: a list, a tuple, or a 1-D numpy array (a search written
    with numpy returns `np.argsort(...)[:k]`), read as a list; None for anything else."""
    if isinstance(value, (list, tuple)):
        return value
    kind = type(value)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy" and getattr(value, "ndim", None) == 1:
        listed = value.tolist()
        return listed if isinstance(listed, list) else None
    return None


def _documents(frame: ModuleFrame, output: Any) -> Any:
    return frame.documents if frame.documents is not None else _passages(output)


def _looks_retrieved(output: Any) -> bool:
    """What a retriever returns: passages, as a list of strings or as `dspy.Prediction(passages=[...])`
    (what `dspy.Retrieve` returns). Read from the Prediction's store, never through its attribute hooks."""
    if type(output) in (list, tuple):
        return bool(output) and all(type(item) is str for item in output)
    store = getattr(output, "__dict__", _NO_FIELDS).get("_store")
    passages = store.get("passages") if type(store) is dict else None
    return type(passages) is list and bool(passages)


def _streamed_without_usage(lm: Any, settings: Any) -> bool:
    """Whether a call on DSPy's LiteLLM path streamed (under `dspy.streamify`) without asking for the usage chunk:
    DSPy streams chat calls only (`model_type="text"` and `"responses"` never stream), and asks for the usage chunk
    only with `track_usage` on; otherwise LiteLLM's `stream_chunk_builder` counts the tokens itself. DSPy's native
    engine always asks."""
    return getattr(lm, "model_type", "chat") == "chat" and settings.get("send_stream") is not None \
        and not settings.get("track_usage")


_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


def _stream_left(error: BaseException, settings: Any) -> bool:
    """Whether a call DSPy was streaming (under `dspy.streamify`) ended because the program stopped reading: leaving
    the `async for` and closing (or dropping) the stream cancels DSPy's task group, and the call with it. The call
    sees the cancellation itself, or, for a sync program streamed from a worker thread, DSPy's `LMUnexpectedError`
    raised from the cancelled `concurrent.futures` send. Its span then says `lmscope.stream.abandoned`, as a LiteLLM
    stream closed early does; the tokens stay unknown (DSPy never saw the usage chunk)."""
    if settings.get("send_stream") is None:
        return False
    return isinstance(error, _CANCELLED) or isinstance(error.__cause__, _CANCELLED)
