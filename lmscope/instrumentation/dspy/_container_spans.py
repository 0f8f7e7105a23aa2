"""The start and end of a container span (`batch`, `Parallel`, `Evaluate`): what went in, what came out.

Apart from `_wrappers.py` so that the Evaluate wrapper (`_evaluation.py`), which adds to it, can share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from ...telemetry._internal_errors import report_internal_error
from . import _containers as containers
from ._containers import InputSummary
from ._frames import FRAME_KEY, ModuleFrame
from ._runtime import NO_PATH, Runtime

ContainerStart = Callable[[Any, tuple[Any, ...], dict[str, Any]], "ModuleFrame | None"]
ContainerEnd = Callable[["ModuleFrame | None", Any, "BaseException | None"], None]


def container_hooks(runtime: Runtime, *, name_suffix: str, summarize: InputSummary, kind: str | None = None,
                    own_path: bool = True, phase: str | None = None) -> tuple[ContainerStart, ContainerEnd]:
    """(start, end) for `_wrappers.traced`: start returns None (no span) when lmscope has left, or for a container
    without a path of its own run straight inside another container."""

    def start(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModuleFrame | None:
        if runtime.retired:  # lmscope has left, and another tool's patch still calls this wrapper (`_patching.py`)
            return None
        parent = otel_context.get_value(FRAME_KEY)
        if not own_path and type(parent) is ModuleFrame and parent.container:
            return None  # Parallel inside Module.batch: the batch span already covers it
        summary = summarize(owner, args, kwargs)
        return runtime.start_module(owner, (), summary, container=True, name_suffix=name_suffix, kind=kind,
                                    path_owner=owner if own_path else NO_PATH,
                                    extra=containers.start_attributes(summary), phase=phase)

    def end(frame: ModuleFrame | None, output: Any, error: BaseException | None) -> None:
        if frame is None:
            return
        summary = None
        if error is None:
            try:
                summary = containers.output_summary(output)
                if frame.span.is_recording():
                    frame.span.set_attributes(containers.end_attributes(summary))
            except Exception as exc:  # noqa: BLE001 - a summary's fault costs the summary, not the span
                report_internal_error("container span summary", exc)
        runtime.end_module(frame, summary or None, error)

    return start, end
