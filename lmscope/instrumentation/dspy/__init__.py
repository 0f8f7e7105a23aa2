"""DSPy instrumentation: module, LM, cache, retriever and tool spans with tokens, cost and settings.

Methods are wrapped directly rather than through DSPy callbacks: DSPy's callback dispatch alone costs
about 0.5 ms per program call (uuid, `inspect.getcallargs`, 11 hook pairs), several times our whole budget,
and a user's `dspy.configure(callbacks=...)` silently drops a registered one (docs/dspy-internals.md §8).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.trace import Tracer

from ...telemetry import _semconv as semconv
from ...telemetry._content import ContentPolicy
from ...telemetry._lm_call import LMCall
from .._patching import Patcher
from .._stack import attributed_to
from . import _wrappers as wrappers
from ._runtime import ModuleListener, Runtime
from ._settings import patch_context_generator, wrap_settings_context
from .package import _instruments


class DSPyInstrumentor:
    """Patches DSPy classes in place; `uninstrument()` puts back the exact objects it found."""

    def __init__(self) -> None:
        self._patcher = Patcher()
        self.runtime: Runtime | None = None
        self._undo_context: Callable[[], None] | None = None

    @staticmethod
    def instrumentation_dependencies() -> Collection[str]:
        return _instruments

    @property
    def is_instrumented(self) -> bool:
        return bool(self._patcher)

    def instrument(self, tracer: Tracer, *, capture_content: bool | ContentPolicy,
                   lm_call_listeners: Collection[Callable[[LMCall], None]] = (),
                   module_listeners: Collection[ModuleListener] = ()) -> None:
        """`capture_content`: the policy for captured content; a bool is the default policy (scrubbed, limited)
        with content captured or not."""
        if self.is_instrumented:
            return
        import dspy
        from dspy.adapters.chat_adapter import ChatAdapter
        from dspy.adapters.json_adapter import JSONAdapter
        from dspy.adapters.types.tool import Tool
        from dspy.clients import execution
        from dspy.clients.base_lm import BaseLM
        from dspy.clients.cache import Cache
        from dspy.dsp.utils.settings import Settings
        from dspy.evaluate.evaluate import Evaluate
        from dspy.predict.parallel import Parallel
        from dspy.primitives.module import Module
        from dspy.retrievers.embeddings import Embeddings
        from dspy.retrievers.retrieve import Retrieve
        from dspy.utils.parallelizer import ParallelExecutor

        content = (capture_content if isinstance(capture_content, ContentPolicy)
                   else ContentPolicy.capturing(capture_content))
        runtime = self.runtime = Runtime(tracer, dspy.settings, content=content)
        runtime.lm_call_listeners.extend(lm_call_listeners)
        runtime.module_listeners.extend(module_listeners)

        def patch(owner: object, name: str, make_wrapper: Callable[[Any], Any]) -> None:
            # DSPy's stack walks count the wrapper's frames as DSPy's own (`_stack.py`): warnings blame the user's line.
            self._patcher.replace(owner, name, lambda original: attributed_to("dspy", make_wrapper(original)))

        patch(Module, "__call__", lambda f: wrappers.module_call(runtime, f))
        patch(Module, "acall", lambda f: wrappers.module_call(runtime, f, is_async=True))
        patch(Retrieve, "__call__", lambda f: wrappers.module_call(runtime, f))
        patch(Embeddings, "__call__", lambda f: wrappers.module_call(runtime, f))
        patch(BaseLM, "__call__", lambda f: wrappers.lm_call(runtime, f))
        patch(BaseLM, "acall", lambda f: wrappers.lm_call(runtime, f, is_async=True))
        patch(Tool, "__call__", lambda f: wrappers.tool_call(runtime, f))
        patch(Tool, "acall", lambda f: wrappers.tool_call(runtime, f, is_async=True))
        patch(execution, "finalize", wrappers.finalize)
        patch(Cache, "get", wrappers.cache_get)
        patch(Cache, "cache_key", wrappers.cache_key)
        patch(ParallelExecutor, "execute", wrappers.parallel_execute)
        patch(Module, "batch", lambda f: wrappers.container_call(runtime, f, name_suffix=".batch"))
        patch(Parallel, "forward", lambda f: wrappers.container_call(runtime, f, name_suffix=".parallel",
                                                                      own_path=False))
        patch(Evaluate, "__call__", lambda f: wrappers.container_call(runtime, f, name_suffix=".evaluate",
                                                                       kind=semconv.KIND_EVALUATOR, own_path=False))
        patch(ChatAdapter, "_make_json_adapter_fallback", lambda f: wrappers.adapter_fallback(runtime, f))
        patch(JSONAdapter, "__call__", wrappers.fallback_adapter_call)
        patch(JSONAdapter, "acall", lambda f: wrappers.fallback_adapter_call(f, is_async=True))
        # Every binding of `Settings.context` (`dspy.context`, a user's `from dspy import context`) calls one helper;
        # its generator is swapped in place. If DSPy's `context` ever stops being `@contextmanager`, wrap the
        # attributes instead: `dspy.context` was bound to the original method when dspy was imported.
        self._undo_context = patch_context_generator(vars(Settings).get("context"))
        if self._undo_context is None:
            patch(Settings, "context", wrap_settings_context)
            patch(dspy, "context", lambda _: dspy.settings.context)

    def uninstrument(self) -> None:
        self._patcher.restore_all()
        if self._undo_context is not None:
            self._undo_context()
            self._undo_context = None
        self.runtime = None
