"""Retrievers that are neither `Module`s nor `Retrieve`: `dspy.ColBERTv2`, a client of a hosted search service.

Each call is a RETRIEVER span with the query and `k` it was given (named like any step: `colbertv2` on its own,
`rag.search` when a module holds it, `rag.retrieve.colbertv2` as `dspy.settings.rm` under `dspy.Retrieve`). Its
documents are what the service answered, read where DSPy receives the answer (`colbertv2_get_request` /
`colbertv2_post_request`): the return value of `simplify=True` is bare text, without the service's `pid` and score.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from ...telemetry import _semconv as semconv
from .._stack import drop_own_frame
from ._frames import FRAME_KEY, ModuleFrame
from ._runtime import Runtime
from ._wrappers import traced


def retriever_call(runtime: Runtime, original: Callable[..., Any]) -> Callable[..., Any]:
    """`ColBERTv2.__call__(self, query, k=10, simplify=False)`: the span's input is the call's arguments by name."""
    signature = inspect.signature(original)
    own = next(iter(signature.parameters), "self")

    def start(retriever: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame:
        try:
            bound = signature.bind(retriever, *args, **kwargs)
        except TypeError:  # DSPy raises it in a moment, with its own message: the span records it
            inputs: dict[str, Any] = {"args": args, **kwargs} if args else kwargs
        else:
            bound.apply_defaults()
            inputs = {name: value for name, value in bound.arguments.items() if name != own}
        k = inputs.get("k")
        extra = {semconv.RETRIEVAL_K: k} if type(k) is int else None
        return runtime.start_module(retriever, (), inputs, kind=semconv.KIND_RETRIEVER, extra=extra)

    return traced(original, start, runtime.end_module, "retriever span start", suppressible=True)


def backend_documents(original: Callable[..., Any]) -> Callable[..., Any]:
    """A request function of `dspy/dsp/colbertv2.py`: its answer (from the service or DSPy's request cache) becomes
    the documents of the retriever span it runs in."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            documents = original(*args, **kwargs)
        except BaseException as error:
            drop_own_frame(error, wrapper)
            raise
        frame = otel_context.get_value(FRAME_KEY)
        if type(frame) is ModuleFrame and frame.retriever and isinstance(documents, list):
            frame.documents = documents
        return documents

    return wrapper
