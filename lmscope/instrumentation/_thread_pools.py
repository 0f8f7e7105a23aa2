"""Work an app hands to a `ThreadPoolExecutor` runs in the OpenTelemetry context of the thread that submitted it.

Context variables do not follow a task into a thread pool: untraced by this, the LiteLLM calls an app fans out on its
own pool (or `loop.run_in_executor`) start traces of their own, outside the span that made them, and a
`lmscope.track()` block around the pool misses them. OpenTelemetry's threading instrumentation and Logfire carry the
context the same way. Only the OpenTelemetry context is carried, not every context variable: DSPy's settings and the
app's own variables stay as the pool leaves them, and an app that does not use OpenTelemetry sees no difference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ._patching import Patcher
from ._stack import drop_own_frame


def carry_context_into_thread_pools() -> Callable[[], None]:
    """Patch `ThreadPoolExecutor.submit` (subclasses included); returns what puts it back."""
    patcher = Patcher()
    patcher.replace(ThreadPoolExecutor, "submit", _submitting_in_context)
    return patcher.restore_all


def _submitting_in_context(submit: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(submit)
    def wrapper(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            return submit(self, _run_in, otel_context.get_current(), fn, args, kwargs)
        except BaseException as error:  # a pool that was shut down: the app's traceback, without this frame
            drop_own_frame(error, wrapper)
            raise

    return wrapper


def _run_in(context: Context, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    token = otel_context.attach(context)
    try:
        return fn(*args, **kwargs)
    except BaseException as error:
        drop_own_frame(error, _run_in)  # the task's traceback is the one it has untraced
        raise
    finally:
        otel_context.detach(token)
