"""DSPy instrumentation: module, LM, cache, retriever and tool spans with tokens, cost and settings.

Methods are wrapped directly rather than through DSPy callbacks: DSPy's callback dispatch alone costs
about 0.5 ms per program call (uuid, `inspect.getcallargs`, 11 hook pairs), several times our whole budget,
and a user's `dspy.configure(callbacks=...)` silently drops a registered one (docs/dspy-internals.md §8).

`DSPyInstrumentor` is an OpenTelemetry `BaseInstrumentor`, registered under the `opentelemetry_instrumentor`
entry point `dspy`: `opentelemetry-instrument python app.py` traces DSPy with no lmscope code in the app.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection
from typing import Any

# The module says `# type: ignore` at its top, so mypy sees none of its names: BaseInstrumentor is Any here.
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.trace import Tracer

from ...telemetry import _semconv as semconv
from ...telemetry._content import ContentPolicy
from ...telemetry._context_attributes import forget_policy
from .._patching import Patcher
from .._setup import InstrumentorSetup, PatchOnImport, resolve_setup
from .._stack import attributed_to
from .._thread_pools import context_carrying_executor
from . import _containers as containers
from . import _evaluation as evaluation
from . import _optimizer_steps as optimizer_steps
from . import _retries as retries
from . import _retrievers as retrievers
from . import _wrappers as wrappers
from ._compile import compile_call
from ._container_spans import container_hooks
from ._embedding_cache import cached_embeddings
from ._forward_requests import execute_result, forward_request
from ._hook_points import HookPoint, dspy_version, install, warn_once
from ._local_embeddings import local_embeddings
from ._neighbours import Neighbours
from ._overrides import patch_overrides
from ._runtime import Runtime
from ._settings import patch_context_generator, wrap_settings_context
from ._tool_calls import tool_call_execute
from ._unbatchify import unbatchify_call
from .package import _instruments

TRACER_NAME = "lmscope.instrumentation.dspy"


class DSPyInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # opentelemetry-instrumentation is untyped
    """Patches DSPy classes in place; `uninstrument()` puts back the exact objects it found.

    `DSPyInstrumentor().instrument()` with no argument does what `opentelemetry-instrument` does: spans go
    through the global TracerProvider, lmscope's metrics through the global MeterProvider when the app (or the
    distro) set an SDK one, and content is captured as `lmscope.instrument()` decides it from the environment
    (LMSCOPE_CAPTURE_CONTENT, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, OPENINFERENCE_HIDE_*,
    `[tool.lmscope]`). Keywords:

    - `tracer_provider`, `meter_provider`: where spans and lmscope's metrics go instead of the global ones. Metrics
      are recorded on a `meter_provider` given, else on the global one only when it is an SDK MeterProvider: the
      API's default provider drops every point, and skipping the recorder then skips its whole cost per call.
    - `capture_content`: a bool (lmscope's default policy, scrubbed and limited, capturing or not), a
      `ContentPolicy`, or None (resolved from the environment as above).
    - `tracer`: a ready Tracer instead of a provider (`lmscope.instrument()` passes its own); then nothing is taken
      from the global providers, and metrics only from `meter_provider`.
    - `lm_call_listeners`, `module_listeners`, `evaluation_listeners`: hooks called once per LM call / module call /
      `dspy.Evaluate` run.

    Like every BaseInstrumentor it is one object per process (`DSPyInstrumentor() is DSPyInstrumentor()`): DSPy's
    classes can be patched once, so whoever instruments first (`opentelemetry-instrument`, the app,
    `lmscope.instrument()`) owns the patches until it uninstruments, and a second `instrument()` is refused.
    A DSPy not imported yet is patched when the app imports it: instrumenting never imports DSPy (~2 s).
    """

    _patcher: Patcher | None = None
    runtime: Runtime | None = None
    _undo_context: Callable[[], None] | None = None
    _policy: ContentPolicy | None = None
    """The policy this instrumentation was set up with (`lmscope.context` writes with it until uninstrumented)."""

    def __init__(self) -> None:
        # BaseInstrumentor.__new__ hands back the one instance, and Python runs __init__ on it each time:
        # a second `DSPyInstrumentor()` must not drop the Patcher that holds what to restore.
        if self._patcher is None:
            self._patcher = Patcher()

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    @property
    def is_instrumented(self) -> bool:
        """True while DSPy's classes are patched (False while waiting for `import dspy`)."""
        return bool(self._patcher)

    def instrument(self, tracer: Tracer | None = None, /, **kwargs: Any) -> None:
        """BaseInstrumentor's `instrument(**kwargs)`; a Tracer may also come first, as before this was one
        (`DSPyInstrumentor().instrument(provider.get_tracer("app"), capture_content=True)`)."""
        if tracer is not None:
            kwargs["tracer"] = tracer
        super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        setup = resolve_setup(kwargs, TRACER_NAME)
        self._policy = setup.content
        _on_import.schedule(lambda: self._patch(setup))

    def _patch(self, setup: InstrumentorSetup) -> None:
        try:
            self._patch_all(setup)
        except BaseException:
            self._unpatch()  # a DSPy whose layout we do not know: leave it exactly as it was
            raise

    def _patch_all(self, setup: InstrumentorSetup) -> None:
        import dspy
        from dspy.clients.lm import LM
        from dspy.dsp.utils.settings import Settings
        from dspy.primitives.module import Module

        patcher = self._patcher
        assert patcher is not None
        runtime = self.runtime = Runtime(setup.tracer, dspy.settings, content=setup.content)
        runtime.lm_call_listeners.extend(setup.lm_call_listeners)
        runtime.module_listeners.extend(setup.module_listeners)
        runtime.evaluation_listeners.extend(setup.evaluation_listeners)
        version = dspy_version()
        warn_once(version, install(_hook_point_table(self, runtime, patcher), patcher, version))
        # DSPy's global settings dict, read directly: `dspy.settings.callbacks` costs ~2 us per read, the dict ~50 ns.
        global_config = getattr(sys.modules.get(Settings.__module__), "main_thread_config", None)
        runtime.neighbours = Neighbours(global_config if isinstance(global_config, dict) else {}, Module, LM)
        runtime.neighbours.look()  # a tool set up before lmscope is named now; one set up later, at its first call

    def _uninstrument(self, **kwargs: Any) -> None:
        self._unpatch()

    def _unpatch(self) -> None:
        _on_import.cancel()
        if self._policy is not None:
            forget_policy(self._policy)
            self._policy = None
        if self.runtime is not None:
            self.runtime.retired = True
        if self._patcher is not None:
            self._patcher.restore_all()
        if self._undo_context is not None:
            self._undo_context()
            self._undo_context = None
        self.runtime = None


def _hook_point_table(instrumentor: DSPyInstrumentor, runtime: Runtime, patcher: Patcher) -> list[HookPoint]:
    """Every place lmscope hooks into DSPy (docs/dspy-internals.md §1), and where each is in each DSPy 3 release."""

    def patch(owner: object, name: str, make_wrapper: Callable[[Any], Any]) -> None:
        # DSPy's stack walks count the wrapper's frames as DSPy's own (`_stack.py`): warnings blame the user's line.
        patcher.replace(owner, name, lambda original: attributed_to("dspy", make_wrapper(original)))

    def modules() -> None:
        from dspy.primitives.module import Module

        patch(Module, "__call__", lambda f: wrappers.module_call(runtime, f))
        patch(Module, "acall", lambda f: wrappers.module_call(runtime, f, is_async=True))

    def retrieve() -> None:
        from dspy.retrievers.retrieve import Retrieve

        patch(Retrieve, "__call__", lambda f: wrappers.module_call(runtime, f))

    def embeddings_retriever() -> None:
        from dspy.retrievers.embeddings import Embeddings
        from dspy.utils.unbatchify import Unbatchify

        patch(Embeddings, "__call__", lambda f: wrappers.module_call(runtime, f))
        patch(Unbatchify, "__call__", unbatchify_call)

    def colbert() -> None:
        from dspy.dsp import colbertv2

        patch(colbertv2.ColBERTv2, "__call__", lambda f: retrievers.retriever_call(runtime, f))
        # ColBERTv2.__call__ looks these up in its module at each call: the service's answer, with `pid`s.
        patch(colbertv2, "colbertv2_get_request", retrievers.backend_documents)
        patch(colbertv2, "colbertv2_post_request", retrievers.backend_documents)

    def local_embedding_functions() -> None:
        from dspy.clients import embedding

        # Looked up in their module at each batch, by `Embedder.__call__`/`acall` and their cached twins.
        patch(embedding, "_compute_embeddings", lambda f: local_embeddings(runtime, f))
        patch(embedding, "_acompute_embeddings", lambda f: local_embeddings(runtime, f, is_async=True))
        # Their cached twins, which call them on a miss only: a batch that reaches neither was a cache hit.
        patch(embedding, "_cached_compute_embeddings", lambda f: cached_embeddings(runtime, f))
        patch(embedding, "_cached_acompute_embeddings", lambda f: cached_embeddings(runtime, f, is_async=True))

    def lm_calls() -> None:
        from dspy.clients.base_lm import BaseLM

        # BaseLM's, and an LM's own that does not go through it (DSPy 3.0-3.2's DummyLM, a user's LM).
        patch_overrides(patcher, BaseLM, ("__call__", "acall"), lambda name: lambda f: attributed_to(
            "dspy", wrappers.lm_call(runtime, f, is_async=name == "acall")))

    def lm_results_from_finalize() -> None:  # DSPy 3.4: `execution.finalize` sees every call's CallResult
        from dspy.clients import execution

        patch(execution, "finalize", wrappers.finalize)

    def lm_results_from_responses() -> None:  # DSPy 3.0-3.3: the provider's response, before it becomes outputs
        from dspy.clients.base_lm import BaseLM

        patch(BaseLM, "_process_lm_response", wrappers.process_lm_response)

    def forward_requests() -> None:  # DSPy 3.0-3.3: `LM.forward` returns the provider's response, its result
        from dspy.clients.base_lm import BaseLM
        from dspy.clients.lm import LM

        patch(LM, "forward", lambda f: forward_request(runtime, f, LM, BaseLM))
        patch(LM, "aforward", lambda f: forward_request(runtime, f, LM, BaseLM, is_async=True))

    def forward_requests_and_results() -> None:  # DSPy 3.4: the result is what `execute` gives `LM.forward`
        from dspy.clients import execution

        patch(execution, "execute", execute_result)
        patch(execution, "aexecute", lambda f: execute_result(f, is_async=True))
        forward_requests()

    def resent_requests() -> None:  # DSPy 3.4: its own retry loop, on either engine (`_retries.py`)
        from dspy.clients import execution

        patch(execution, "_delay", lambda f: retries.retry_delay(runtime.content, f))

    def cache_layers() -> None:
        from dspy.clients.cache import Cache

        patch(Cache, "get", wrappers.cache_get)
        patch(Cache, "cache_key", wrappers.cache_key)

    def tools() -> None:
        from dspy.adapters.types.tool import Tool

        patch(Tool, "__call__", lambda f: wrappers.tool_call(runtime, f))
        patch(Tool, "acall", lambda f: wrappers.tool_call(runtime, f, is_async=True))

    def native_tool_calls() -> None:
        from dspy.adapters.types.tool import Tool, ToolCalls

        patch(ToolCalls.ToolCall, "execute", lambda f: tool_call_execute(runtime, f, Tool))

    def loaded_programs() -> None:
        from dspy.primitives.base_module import BaseModule

        patch(BaseModule, "load_state", wrappers.load_state)

    def worker_threads() -> None:
        from dspy.utils.parallelizer import ParallelExecutor

        patch(ParallelExecutor, "execute", wrappers.parallel_execute)

    def fan_outs() -> None:
        from dspy.predict.parallel import Parallel
        from dspy.primitives.module import Module

        patch(Module, "batch", lambda f: wrappers.container_call(runtime, f, name_suffix=".batch",
                                                                  summarize=containers.batch_input))
        patch(Parallel, "forward", lambda f: wrappers.container_call(runtime, f, name_suffix=".parallel",
                                                                      summarize=containers.parallel_input,
                                                                      own_path=False))

    def evaluations() -> None:
        from dspy.evaluate.evaluate import Evaluate

        patch(Evaluate, "__call__", lambda f: evaluation.evaluate_call(runtime, f, *container_hooks(
            runtime, name_suffix=".evaluate", summarize=containers.evaluate_input, kind=semconv.KIND_EVALUATOR,
            own_path=False, phase=semconv.PHASE_EVALUATE)))

    def json_fallback() -> None:
        from dspy.adapters.chat_adapter import ChatAdapter
        from dspy.adapters.json_adapter import JSONAdapter

        patch(ChatAdapter, "_make_json_adapter_fallback", lambda f: wrappers.adapter_fallback(runtime, f))
        patch(JSONAdapter, "__call__", wrappers.fallback_adapter_call)
        patch(JSONAdapter, "acall", lambda f: wrappers.fallback_adapter_call(f, is_async=True))

    def compiles() -> None:
        from dspy.teleprompt.teleprompt import Teleprompter

        # Every optimizer's compile, those defined later too (`_compile.py`).
        patch_overrides(patcher, Teleprompter, ("compile",),
                        lambda _: lambda f: attributed_to("dspy", compile_call(runtime, f)))

    def bootstraps() -> None:
        from dspy.teleprompt import bootstrap

        patch(bootstrap.BootstrapFewShot, "_bootstrap_one_example",
              lambda f: optimizer_steps.bootstrap_one_example(runtime, f))

    def random_search_trials() -> None:
        from dspy.teleprompt import random_search

        patcher.replace(random_search, "Evaluate", lambda cls: optimizer_steps.random_search_evaluate(runtime, cls))

    def mipro_trials() -> None:
        from dspy.teleprompt import mipro_optimizer_v2

        patch(mipro_optimizer_v2, "eval_candidate_program", lambda f: optimizer_steps.mipro_eval(runtime, f))
        patch(mipro_optimizer_v2.MIPROv2, "_select_and_insert_instructions_and_demos", optimizer_steps.mipro_choice)

    def mipro_proposals() -> None:
        from dspy.propose.grounded_proposer import GroundedProposer

        patch(GroundedProposer, "propose_instruction_for_predictor",
              lambda f: optimizer_steps.propose_instruction(runtime, f))

    def avatar_threads() -> None:
        from dspy.teleprompt import avatar_optimizer

        patcher.replace(avatar_optimizer, "ThreadPoolExecutor", context_carrying_executor)

    def gepa_trials() -> None:
        gepa_engine = _optional_module("gepa.core.engine")  # GEPA's own package, absent on Python 3.15+
        if gepa_engine is not None:
            patch(gepa_engine, "notify_callbacks", lambda f: optimizer_steps.gepa_notify(runtime, f))

    def overrides_in_place() -> None:
        from dspy.dsp.utils.settings import Settings

        # Every binding of `Settings.context` (`dspy.context`, a user's `from dspy import context`) calls one helper;
        # its generator is swapped in place.
        instrumentor._undo_context = patch_context_generator(vars(Settings).get("context"))
        if instrumentor._undo_context is None:
            raise AttributeError("Settings.context is not a @contextmanager helper")

    def overrides_by_attribute() -> None:
        import dspy
        from dspy.dsp.utils.settings import Settings

        # `dspy.context` was bound to the original method when dspy was imported: both names are wrapped.
        patch(Settings, "context", wrap_settings_context)
        patch(dspy, "context", lambda _: dspy.settings.context)

    return [
        HookPoint("module spans", [modules]),
        HookPoint("LM spans", [lm_calls]),
        HookPoint("tokens, cost and cache hits of LM calls", [lm_results_from_finalize, lm_results_from_responses]),
        HookPoint("the cache layer of a hit", [cache_layers]),
        HookPoint("DSPy requests the app's code makes through LM.forward",
                  [forward_requests_and_results, forward_requests]),
        # DSPy 3.0-3.3 leave retrying to LiteLLM and the OpenAI SDK beneath it (`litellm/_sdk_retries.py`)
        HookPoint("failed LM requests DSPy sends again", [resent_requests], since=(3, 4)),
        HookPoint("dspy.context overrides", [overrides_in_place, overrides_by_attribute]),
        HookPoint("Retrieve spans", [retrieve]),
        HookPoint("Embeddings retriever spans", [embeddings_retriever]),
        HookPoint("ColBERTv2 spans", [colbert]),
        HookPoint("local embedding function spans and Embedder cache hits", [local_embedding_functions]),
        HookPoint("tool spans", [tools]),
        HookPoint("native tool call spans (ToolCall.execute)", [native_tool_calls]),
        HookPoint("the compiled flag of a loaded program", [loaded_programs]),
        HookPoint("one trace across worker threads", [worker_threads]),
        HookPoint("batch and Parallel spans", [fan_outs]),
        HookPoint("Evaluate spans", [evaluations]),
        HookPoint("the JSON adapter fallback", [json_fallback], since=(3, 3)),
        HookPoint("optimizer compiles", [compiles]),
        HookPoint("bootstrap steps", [bootstraps]),
        HookPoint("RandomSearch trials", [random_search_trials]),
        HookPoint("MIPROv2 trials", [mipro_trials]),
        HookPoint("MIPROv2 proposals", [mipro_proposals]),
        HookPoint("AvatarOptimizer threads", [avatar_threads]),
        HookPoint("GEPA trials", [gepa_trials], since=(3, 3)),  # the GEPA DSPy 3.0-3.2 pin (0.0.x) has no callbacks
    ]


def _optional_module(name: str) -> Any:
    """A module DSPy may run without, imported if installed (DSPy imports GEPA's when it has it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_on_import = PatchOnImport("dspy")
"""The one for the process: DSPyInstrumentor is a singleton, and wrapt's hook outlives any instrument()."""


__all__ = ["DSPyInstrumentor"]
