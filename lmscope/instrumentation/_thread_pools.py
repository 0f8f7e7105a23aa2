"""Work an app hands to a `ThreadPoolExecutor` runs in the OpenTelemetry context of the thread that submitted it.

Context variables do not follow a task into a thread pool: untraced by this, the LiteLLM calls an app fans out on its
own pool (or `loop.run_in_executor`) start traces of their own, outside the span that made them, and a
`lmscope.track()` block around the pool misses them. OpenTelemetry's threading instrumentation and Logfire carry the
context too. Only the OpenTelemetry context is carried, not every context variable: DSPy's settings and the app's
own variables stay as the pool leaves them, and an app that does not use OpenTelemetry sees no difference.

The task runs in the worker thread's own context, as without lmscope (what the pool's `initializer` set there is
there, and a variable a task sets is there for the next one), with the submitter's OpenTelemetry context attached
for the task's duration, as OpenTelemetry's threading instrumentation does. An exception leaves without the runner's
frame in its traceback (`drop_own_frame`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context

from ._patching import Patcher
from ._stack import drop_own_frame

_OWN_PREPARE = getattr(ThreadPoolExecutor, "prepare_context", None)


def carry_context_into_thread_pools() -> Callable[[], None]:
    """Patch `ThreadPoolExecutor.submit` (subclasses included); returns what puts it back."""
    patcher = Patcher()
    patcher.replace(ThreadPoolExecutor, "submit", _submitting_in_context)
    return patcher.restore_all


def _submitting_in_context(submit: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(submit)
    def wrapper(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            if not _runs_callables_on_threads(type(self)):
                return submit(self, fn, *args, **kwargs)
            return submit(self, _run_attached, otel_context.get_current(), fn, *args, **kwargs)
        except BaseException as error:  # a pool that was shut down: the app's traceback, without this frame
            drop_own_frame(error, wrapper)
            raise

    return wrapper


def _run_attached(launching: otel_context.Context, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    token = otel_context.attach(launching)
    try:
        return fn(*args, **kwargs)
    except BaseException as error:
        drop_own_frame(error, _run_attached)
        raise
    finally:
        otel_context.detach(token)


def _runs_callables_on_threads(pool: type) -> bool:
    """False for Python 3.14's `InterpreterPoolExecutor`, a subclass that sends each task to another interpreter
    (pickled, or a script): lmscope's runner there would be neither a picklable task nor a script. Its
    `prepare_context` says so."""
    prepare = getattr(pool, "prepare_context", None)
    return getattr(prepare, "__func__", prepare) is getattr(_OWN_PREPARE, "__func__", _OWN_PREPARE)


def context_carrying_executor(executor: type[Any]) -> type[Any]:
    """A module's `ThreadPoolExecutor` whose tasks run in the OpenTelemetry context that submitted them, whether or not
    the app's pools carry it (`carry_context_into_thread_pools`): put in the module of a library that fans its own work
    out on a bare pool (DSPy's AvatarOptimizer evaluates there, LiteLLM's `batch_completion_models` sends each
    deployment's request there). Only the OpenTelemetry context is carried: the library's own settings stay as it
    leaves them."""

    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return executor.submit(self, _run_attached, otel_context.get_current(), fn, *args, **kwargs)

    return type(executor.__name__, (executor,), {"submit": submit, "__module__": executor.__module__,
                                                 "__qualname__": executor.__qualname__})
