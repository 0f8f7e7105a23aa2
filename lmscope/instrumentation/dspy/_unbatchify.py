"""`dspy.utils.unbatchify.Unbatchify`: carry the caller's OpenTelemetry context to the batching thread.

`dspy.retrievers.Embeddings` embeds its queries on a worker thread of its own (`Unbatchify`): callers queue a query
and wait, the thread gathers what is queued and runs one batch. Without help that batch's embedding request starts
a trace of its own. Each queued item therefore travels with its caller's context, and the batch runs in the
context of its first item: the request is a child of that caller's retriever span, rolls up into it, and counts in
its `track()` block. A batch that serves several concurrent callers is still one request, one span (under the first).

The items reach the batch function unwrapped: the instance's `batch_fn` is wrapped once, on its first call after
instrumenting, before any carried item is queued; the wrapper stays (it passes plain items through), so an item
queued just before `uninstrument()` still reaches the batch function as the caller gave it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ...telemetry._internal_errors import report_internal_error
from .._stack import drop_own_frame


class _Carried:
    """A queued item and the context of the caller who queued it."""

    __slots__ = ("context", "item")

    def __init__(self, item: Any, context: Context) -> None:
        self.item = item
        self.context = context


class _InCallersContext:
    """The instance's batch function, run in the context of its batch's first caller."""

    __slots__ = ("batch_fn",)

    def __init__(self, batch_fn: Callable[[list[Any]], Any]) -> None:
        self.batch_fn = batch_fn

    def __call__(self, batch: list[Any]) -> Any:
        context = next((item.context for item in batch if type(item) is _Carried), None)
        items = [item.item if type(item) is _Carried else item for item in batch]
        token = otel_context.attach(context) if context is not None else None
        try:
            return self.batch_fn(items)
        except BaseException as error:
            # The callers get this error from their futures, its traceback through the batching thread: as untraced.
            drop_own_frame(error, _InCallersContext.__call__)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)


_wrapping = threading.Lock()


def _carrying(unbatchify: Any) -> bool:
    """Wrap the instance's `batch_fn` (once, whichever caller is first); False if it cannot be."""
    if type(getattr(unbatchify, "batch_fn", None)) is _InCallersContext:
        return True
    with _wrapping:
        batch_fn = getattr(unbatchify, "batch_fn", None)
        if type(batch_fn) is not _InCallersContext:
            if not callable(batch_fn):
                return False
            unbatchify.batch_fn = _InCallersContext(batch_fn)
    return True


def unbatchify_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """`Unbatchify.__call__(self, input_item)`: queue the item with the caller's context."""

    @functools.wraps(original)
    def wrapper(self: Any, input_item: Any) -> Any:
        item = input_item
        try:
            if _carrying(self):
                item = _Carried(input_item, otel_context.get_current())
        except Exception as exc:  # noqa: BLE001 - the item goes as given: its batch runs outside the trace
            report_internal_error("Unbatchify context", exc)
        try:
            return original(self, item)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise

    return wrapper
