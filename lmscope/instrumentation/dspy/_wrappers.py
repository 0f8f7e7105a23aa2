"""Wrapper factories: each takes the original callable and returns the traced replacement.

Two shapes cover every DSPy entry point: `traced` for a sync method, `traced_async` for a coroutine
method. `start` runs before the call and returns its frame (`_frames.py`: the span, the attached context and
what the call learns on the way); `end` always runs after it, with that frame and the result or the exception.
If `start` fails, the original runs untouched; the user's exception is re-raised as is. The span-starting wrappers
(`suppressible`) also run the original untouched inside the app's `suppress_instrumentation()` (`app_suppressed`).
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Iterator
from contextvars import Token
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ...telemetry import _semconv as semconv
from ...telemetry._internal_errors import report_internal_error
from .._stack import drop_own_frame
from ._attributes import tool_attributes
from ._container_spans import container_hooks
from ._containers import InputSummary
from ._evaluation import evaluation_of
from ._frames import ADAPTER_KEY, BATCH_ITEM_KEY, FRAME_KEY, BatchItem, ModuleFrame, app_suppressed, current_lm_frame
from ._naming import loaded_with_demos
from ._results import LegacyCall, LegacyResult
from ._runtime import NO_PATH, Runtime

_FALLBACK_MESSAGE_CHARS = 500
Frame = TypeVar("Frame")
"""What `start` hands to `end`: an LMFrame, a ModuleFrame, or None for a call that gets no span."""
Start = Callable[[Any, tuple[Any, ...], dict[str, Any]], Frame]
End = Callable[[Frame, Any, "BaseException | None"], None]


def traced(original: Callable[..., Any], start: Start[Frame], end: End[Frame], where: str, *,
           suppressible: bool = False, within: Callable[[Any], bool] | None = None) -> Callable[..., Any]:
    """`original` between `start` and `end`; passed straight through under the app's suppression (`suppressible`)
    or when `within(self)`: the call is already inside its own span."""
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (suppressible and app_suppressed()) or (within is not None and within(self)):
            try:
                return original(self, *args, **kwargs)
            except BaseException as error:
                drop_own_frame(error, wrapper)
                raise
        try:
            frame = start(self, args, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error(where, exc)
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)  # first: the span records the traceback the program gets
            end(frame, None, error)
            raise
        end(frame, result, None)
        return result

    return wrapper


def traced_async(original: Callable[..., Any], start: Start[Frame], end: End[Frame], where: str, *,
                  suppressible: bool = False,
                 within: Callable[[Any], bool] | None = None) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (suppressible and app_suppressed()) or (within is not None and within(self)):
            try:
                return await original(self, *args, **kwargs)
            except BaseException as error:
                drop_own_frame(error, wrapper)
                raise
        try:
            frame = start(self, args, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error(where, exc)
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)  # first: the span records the traceback the program gets
            end(frame, None, error)
            raise
        end(frame, result, None)
        return result

    return wrapper


def module_call(runtime: Runtime, original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    if not is_async:
        return traced(original, runtime.start_module, runtime.end_module, "module span start", suppressible=True)

    def start(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame:
        return runtime.start_module(module, args, kwargs, method="aforward")  # what `acall` runs

    return traced_async(original, start, runtime.end_module, "module span start", suppressible=True)


def lm_call(runtime: Runtime, original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    """One LM span per call of an LM: an LM's own `__call__` that reaches BaseLM's through `super()` is already in
    this LM's span there, and passes straight through; so does every call once `runtime` is retired (a wrapper kept
    by another tool's patch, or copied with an app's class into a process without lmscope: `Runtime.__reduce__`)."""
    wrap = traced_async if is_async else traced

    def passed_through(lm: Any) -> bool:
        return runtime.retired or _in_own_span(lm)

    return wrap(original, runtime.start_lm, runtime.end_lm, "LM span start", suppressible=True, within=passed_through)


def _in_own_span(lm: Any) -> bool:
    frame = current_lm_frame()
    return frame is not None and frame.lm is lm


def container_call(runtime: Runtime, original: Callable[..., Any], *, name_suffix: str, summarize: InputSummary,
                   kind: str | None = None, own_path: bool = True, phase: str | None = None) -> Callable[..., Any]:
    """A span around work DSPy fans out to threads (`batch`, `Parallel`, `Evaluate`): one trace, not many. It says
    what went in and what came out (`_containers.py`); `phase` is the one the run enters (`Evaluate`'s)."""

    start, end = container_hooks(runtime, name_suffix=name_suffix, summarize=summarize, kind=kind,
                                 own_path=own_path, phase=phase)
    return traced(original, start, end, "container span start", suppressible=True)


def tool_call(runtime: Runtime, original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    def start(tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame:
        name = str(getattr(tool, "name", None) or type(tool).__name__)
        extra = tool_attributes(name, getattr(tool, "desc", None), schema_shown_to_the_lm(tool), runtime.content)
        return runtime.start_module(tool, (), kwargs, name=f"{semconv.GEN_AI_OPERATION_EXECUTE_TOOL} {name}",
                                    kind=semconv.KIND_TOOL, path_owner=NO_PATH, extra=extra)

    wrap = traced_async if is_async else traced
    return wrap(original, start, runtime.end_module, "tool span start", suppressible=True)


def schema_shown_to_the_lm(tool: Any) -> Any:
    """The argument schema DSPy sends the LM for `tool`, from DSPy itself: which arguments it calls required
    changed in 3.4 (every one before, those without a default since)."""
    describe = getattr(tool, "format_as_litellm_function_call", None)
    function = describe().get("function") if callable(describe) else None
    return function.get("parameters") if isinstance(function, dict) else None


def load_state(original: Callable[..., Any]) -> Callable[..., Any]:
    """`BaseModule.load_state` (what `program.load(path)` runs): a program whose predictors it gave demos is
    compiled, and its module span says so (`_naming.loaded_with_demos`); the state itself is DSPy's business."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = original(self, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise
        try:
            if any(getattr(predictor, "demos", None) for _name, predictor in self.named_predictors()):
                loaded_with_demos(self)
        except Exception as exc:  # noqa: BLE001 - the state is loaded: only the span's word on it is lost
            report_internal_error("compiled program check after load_state", exc)
        return result

    return wrapper


def finalize(original: Callable[..., Any]) -> Callable[..., Any]:
    """`dspy.clients.execution.finalize`: the one place that sees usage, cost and the cache-hit flag."""

    @functools.wraps(original)
    def wrapper(lm: Any, call: Any, result: Any) -> Any:
        frame = current_lm_frame()
        if frame is not None:
            frame.call = call
            frame.result = result
        try:
            return original(lm, call, result)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper


def process_lm_response(original: Callable[..., Any]) -> Callable[..., Any]:
    """DSPy 3.0-3.3's `BaseLM._process_lm_response(response, prompt, messages, **kwargs)`: the provider's response
    on its way to outputs, the one place there that sees usage, cost and the cache-hit flag (what `finalize` is in
    3.4, docs/dspy-internals.md §13)."""

    @functools.wraps(original)
    def wrapper(lm: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        frame = current_lm_frame()
        if frame is not None:
            frame.call = LegacyCall(bool(kwargs.get("cache", getattr(lm, "cache", True))))
            frame.result = LegacyResult(response)
        try:
            return original(lm, response, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper


def cache_get(original: Callable[..., Any]) -> Callable[..., Any]:
    """`Cache.get`: tells a memory hit from a disk hit (DSPy promotes disk hits, so look before)."""

    @functools.wraps(original)
    def wrapper(self: Any, request: Any, ignored_args_for_cache_key: Any = None) -> Any:
        frame = current_lm_frame()
        if frame is None or frame.cache_layer is not None:
            return original(self, request, ignored_args_for_cache_key)
        if not self.enable_memory_cache and not self.enable_disk_cache:
            return original(self, request, ignored_args_for_cache_key)  # DSPy returns before hashing: so do we
        try:
            key = self.cache_key(request, ignored_args_for_cache_key)
        except Exception:  # noqa: BLE001 - what DSPy catches here: it skips its cache for a request it cannot hash
            return original(self, request, ignored_args_for_cache_key)  # which fails again and says so at DEBUG
        in_memory = None
        try:
            with self._lock:
                in_memory = bool(self.enable_memory_cache) and key in self.memory_cache
            frame.cache_key_memo = (request, key)  # lets the original get reuse the hash
        except Exception as exc:  # noqa: BLE001
            report_internal_error("cache probe", exc)
        try:
            value = original(self, request, ignored_args_for_cache_key)
        finally:
            frame.cache_key_memo = None
        if value is not None and in_memory is not None:
            frame.cache_layer = "memory" if in_memory else "disk"
            frame.stored_record = _stored_record(self, key, value)
        return value

    return wrapper


def _stored_record(cache: Any, key: str, hit: Any) -> Any:
    """The record a hit was copied from: it still has the usage DSPy zeroed on the copy (a LiteLLM response's). From
    memory, where a disk hit was just put too; with the memory tier off, read again from disk, only for a copy that
    lost its usage (a native record keeps it on its responses)."""
    try:
        if cache.enable_memory_cache:
            with cache._lock:
                return cache.memory_cache.get(key)
        return cache.disk_cache.get(key) if hasattr(hit, "usage") else None
    except Exception as exc:  # noqa: BLE001 - costs the hit's saved tokens, not the call
        report_internal_error("cached record of a hit", exc)
        return None


def cache_key(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, request: Any, ignored_args_for_cache_key: Any = None) -> Any:
        frame = current_lm_frame()
        if frame is not None:
            memo = frame.cache_key_memo
            if memo is not None and memo[0] is request:
                return memo[1]
        return original(self, request, ignored_args_for_cache_key)

    return wrapper


def parallel_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    """`ParallelExecutor.execute`: carry the launching OTel context into worker threads.

    DSPy copies only its own settings into workers (docs/dspy-internals.md §6). We attach the launching context
    (span, frame, `lmscope.context`, `track()`, overrides) around each item and mark its position. Items of an
    Evaluate run each get their `example {index}` span (`_evaluation.py`).
    The container span that launched the run (`batch`, `Parallel`, `Evaluate`) gets the executor's thread count.
    """

    @functools.wraps(original)
    def wrapper(self: Any, function: Callable[[Any], Any], data: Any) -> Any:
        launching = otel_context.get_current()
        parent = launching.get(FRAME_KEY)
        if type(parent) is ModuleFrame and parent.container:
            _record_num_threads(parent, self)
        evaluation = evaluation_of(launching, parent)  # None: not Evaluate's own run, no example spans
        items = _Positions(data)
        failed = _FailedItems()

        def run(item: Any) -> Any:
            index = items.position(item)
            token = otel_context.attach(otel_context.set_value(BATCH_ITEM_KEY, BatchItem(index, parent), launching))
            try:
                return function(item) if evaluation is None else evaluation.run_example(index, function, item)
            except BaseException as error:
                if isinstance(error, Exception):  # what DSPy's executor catches and counts
                    failed.add()
                drop_own_frame(error, run)
                raise
            finally:
                otel_context.detach(token)

        try:
            return original(self, run, items)
        except BaseException as error:  # DSPy's cancellation after `max_errors`, a KeyboardInterrupt, ...
            drop_own_frame(error, wrapper)  # the traceback `batch`, `Parallel` and `Evaluate` raise is DSPy's own
            if evaluation is None and type(parent) is ModuleFrame and parent.container:
                failed.record_on(parent)  # no results to count them from: Evaluate's span has its own count
            raise

    return wrapper


class _FailedItems:
    """How many items of a `ParallelExecutor` run raised, for the span of a `batch` or `Parallel` DSPy gave up on
    (`max_errors`): when it returns, the results say it (`_containers.output_summary`)."""

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.count += 1

    def record_on(self, frame: ModuleFrame) -> None:
        try:
            if frame.span.is_recording():
                with self.lock:
                    frame.span.set_attribute(semconv.BATCH_FAILED, self.count)
        except Exception as exc:  # noqa: BLE001 - costs the count, not the run
            report_internal_error("failed items of a cancelled run", exc)


class _Positions:
    """The items of a `ParallelExecutor` run as DSPy reads them (their count, then one pass), noting the position of
    each on the way: DSPy hands the function an item alone, and its span says where in the run it was. Noted as DSPy
    reads them, not in a pass of lmscope's own: a source that can be read once (a cursor that knows its row count)
    stays whole, and a devset that makes new Examples at each pass is read once, as without lmscope.

    An item's runs take its positions in the order DSPy read them (an item there twice, `devset * 2`, runs twice, the
    second run maybe before DSPy has read its second place); a run past them keeps the last (DSPy may run a
    straggler again). Each item is held until the run ends, so that no later item gets its `id`."""

    __slots__ = ("data", "lock", "positions")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.positions: dict[int, _ItemPositions] = {}
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Any]:
        try:
            for index, item in enumerate(self.data):
                with self.lock:
                    positions = self.positions.get(id(item))
                    if positions is None:
                        positions = self.positions[id(item)] = _ItemPositions(item)
                    positions.unrun.append(index)
                yield item
        except BaseException as error:  # the source's own error, as DSPy gets it without lmscope
            drop_own_frame(error, _Positions.__iter__)
            raise

    def position(self, item: Any) -> int:
        """The position of this run of `item`; -1 for an item DSPy did not read from the data."""
        with self.lock:
            positions = self.positions.get(id(item))
            if positions is None:
                return -1
            if positions.unrun:
                positions.last = positions.unrun.popleft()
            return positions.last


class _ItemPositions:
    __slots__ = ("item", "last", "unrun")

    def __init__(self, item: Any) -> None:
        self.item = item
        """Held: an item freed during the run would leave its `id` to the next one."""
        self.unrun: collections.deque[int] = collections.deque()
        """Its positions DSPy has read and no run has taken yet, in the order DSPy read them."""
        self.last = -1


def _record_num_threads(frame: ModuleFrame, executor: Any) -> None:
    """The count DSPy resolved in `ParallelExecutor.__init__` (the argument, else `dspy.settings`/`dspy.context`),
    read from the executor that runs the items: exactly what the run used, however the caller got to it."""
    try:
        num_threads = getattr(executor, "num_threads", None)
        if type(num_threads) is int and frame.span.is_recording():
            frame.span.set_attribute(semconv.BATCH_NUM_THREADS, num_threads)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("batch thread count", exc)


_fallback_adapters: WeakKeyDictionary[Any, str] = WeakKeyDictionary()
"""Adapters made by `_make_json_adapter_fallback` -> the class name of the adapter they stand in for."""


def adapter_fallback(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`ChatAdapter._make_json_adapter_fallback` runs only when parsing failed: mark it on the step, and remember
    the adapter it makes, so that its LM calls say which adapter made them (`fallback_adapter_call`).

    The event's message quotes what the LM said: it is output content, so it is recorded only when outputs are
    captured, scrubbed like content and cut to 500 characters; the error type, `from` and `to` always are."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not app_suppressed():  # the app's suppress_instrumentation(): no event on whatever span is current
            _fallback_event(runtime, self)
        try:
            adapter = original(self, *args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise
        try:
            _fallback_adapters[adapter] = type(self).__name__
        except Exception as exc:  # noqa: BLE001 - an adapter that cannot be weakly referenced goes unlabelled
            report_internal_error("adapter fallback label", exc)
        return adapter

    return wrapper


def _fallback_event(runtime: Runtime, adapter: Any) -> None:
    try:
        import sys

        from opentelemetry import trace

        error = sys.exc_info()[1]
        attributes: dict[str, Any] = {"from": type(adapter).__name__, "to": "JSONAdapter"}
        span = trace.get_current_span()
        if error is not None:
            attributes[semconv.ERROR_TYPE] = type(error).__name__
        if error is not None and runtime.content.capture_outputs:
            attributes["message"], redacted = runtime.content.text(str(error), "message", free_text=True,
                                                                   max_chars=_FALLBACK_MESSAGE_CHARS)
            if redacted and span.is_recording():
                span.set_attribute(semconv.SCRUBBED, True)
        span.add_event(semconv.ADAPTER_EVENT_FALLBACK, attributes)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("adapter fallback event", exc)


def fallback_adapter_call(original: Callable[..., Any], *, is_async: bool = False) -> Callable[..., Any]:
    """`JSONAdapter.__call__`/`acall`: while a fallback adapter runs, its LM calls carry its name."""

    def start(adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Token[Context] | None:
        stands_in_for = _fallback_adapters.get(adapter) if _fallback_adapters else None
        if stands_in_for is None:
            return None
        return otel_context.attach(otel_context.set_value(ADAPTER_KEY, (type(adapter).__name__, stands_in_for)))

    def end(token: Token[Context] | None, output: Any, error: BaseException | None) -> None:
        if token is not None:
            otel_context.detach(token)

    wrap = traced_async if is_async else traced
    return wrap(original, start, end, "fallback adapter start")
