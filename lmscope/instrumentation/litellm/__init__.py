"""LiteLLM instrumentation: one span per provider call a LiteLLM app makes, with tokens, cost and messages.

`LiteLLMInstrumentor` wraps LiteLLM's module functions (`completion`, `acompletion`, `text_completion`,
`atext_completion`, `responses`, `aresponses`, `embedding`, `aembedding`) where the app reaches them,
`litellm.<name>`. A call inside lmscope's DSPy LM span (DSPy's `engine="litellm"`) or inside the app's
`suppress_instrumentation()` is not traced a second time. Instrumenting never imports LiteLLM (~2 s): the patch
applies when the app imports it. Next to OpenInference's LiteLLM instrumentor lmscope goes beneath its patch in
either order, and LiteLLM's own otel callback writes nothing on lmscope's span (docs/litellm-internals.md, "Other
tracers of LiteLLM"); either is named once in a warning (`_neighbours.py`).

`completion_with_retries`, `acompletion_with_retries`, `responses_with_retries` and `aresponses_with_retries` get
each attempt traced (one span per attempt, `_wrappers.with_traced_attempts`), also when LiteLLM calls them to retry
a traced call itself (`num_retries`): that call's span then ends as its failed first attempt's. `litellm.Router`'s
`completion`, `acompletion`, `embedding` and `aembedding` are one `router {model group}` span each, over the
deployment attempts (retries and fallbacks included), which the Router makes through `litellm.completion` and its
siblings: each attempt is an LM span (`_router.py`, docs/litellm-internals.md §4). A chat call with `fallbacks=` has
no span: each model LiteLLM tries is a traced `litellm.acompletion` call of its own (§6); so has the sync
`completion(model_list=...)`, whose deployments' calls run on a pool carrying the caller's context. A request refused
for its context window and sent again to the model `context_window_fallback_dict` names is a span of its own
(`_context_window.py`). A request the OpenAI SDK
beneath LiteLLM sends again (its own retries) is a span of its own (`_sdk_retries.py`). Not traced: names bound
before instrumenting (`from litellm import completion`), which a warning names (`_bound_names.py`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Collection
from typing import Any

# The module says `# type: ignore` at its top, so mypy sees none of its names: BaseInstrumentor is Any here.
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ...telemetry._content import ContentPolicy
from ...telemetry._context_attributes import forget_policy
from ...telemetry._internal_errors import guarded, report_internal_error
from .._patching import Patcher
from .._setup import InstrumentorSetup, PatchOnImport, resolve_setup
from ._bound_names import warn_names_bound_before
from ._neighbours import LiteLLMNeighbours
from ._spans import CHAT, EMBEDDINGS, RESPONSES, TEXT_COMPLETION, LiteLLMRuntime
from .package import _instruments

TRACER_NAME = "lmscope.instrumentation.litellm"
# (function, operation, its leading positional parameters, async): LiteLLM's own names and order
# (docs/litellm-internals.md §1; tests/instrumentation/test_litellm_positional.py compares them with its signatures).
_TARGETS = (
    ("completion", CHAT, ("model", "messages"), False),
    ("acompletion", CHAT, ("model", "messages"), True),
    ("text_completion", TEXT_COMPLETION, ("prompt", "model"), False),
    ("atext_completion", TEXT_COMPLETION, ("prompt", "model"), True),
    ("responses", RESPONSES, ("input", "model"), False),
    ("aresponses", RESPONSES, ("input", "model"), True),
    ("embedding", EMBEDDINGS, ("model", "input"), False),
    ("aembedding", EMBEDDINGS, ("model", "input"), True),
)
# (function, the module holding the function it calls by default, that function's name, the function LiteLLM's own
# retry path gives it: `client` in litellm/utils.py, docs/litellm-internals.md §6)
_RETRYING = (
    ("completion_with_retries", "litellm.main", "completion", "completion"),
    ("acompletion_with_retries", "litellm.main", "completion", "acompletion"),  # sic: the default is the sync one
    ("responses_with_retries", "litellm.responses.dispatch", "responses", "responses"),
    ("aresponses_with_retries", "litellm.responses.dispatch", "aresponses", "aresponses"),
)


class LiteLLMInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # opentelemetry-instrumentation is untyped
    """Patches `litellm`'s functions in place; `uninstrument()` puts back the exact objects it found. Takes the
    keywords of `DSPyInstrumentor` (`tracer_provider`, `meter_provider`, `capture_content`, `tracer`,
    `lm_call_listeners`); one object per process, like every BaseInstrumentor."""

    _patcher: Patcher | None = None
    runtime: LiteLLMRuntime | None = None
    _policy: ContentPolicy | None = None
    """The policy this instrumentation was set up with (`lmscope.context` writes with it until uninstrumented)."""

    def __init__(self) -> None:
        if self._patcher is None:
            self._patcher = Patcher()

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        setup = resolve_setup(kwargs, TRACER_NAME)
        self._policy = setup.content
        _on_import.schedule(lambda: self._patch(setup))

    def _patch(self, setup: InstrumentorSetup) -> None:
        import litellm
        from litellm.router import Router

        from . import _router as router
        from . import _sdk_retries as sdk_retries
        from . import _wrappers as wrappers

        patcher = self._patcher
        assert patcher is not None
        runtime = self.runtime = LiteLLMRuntime(setup.tracer, setup.content, setup.lm_call_listeners)
        originals = {name: getattr(litellm, name) for name, *_ in (*_TARGETS, *_RETRYING) if hasattr(litellm, name)}
        try:
            traced = {}
            for name, operation, names, is_async in _TARGETS:
                trace = functools.partial(wrappers.traced_async_call if is_async else wrappers.traced_call, runtime,
                                          operation=operation, names=names)
                patcher.replace(litellm, name, trace)
                traced[name] = trace
            for name, module, attempt, given in _RETRYING:
                if hasattr(litellm, name):
                    default = traced[attempt](getattr(importlib.import_module(module), attempt))
                    # what LiteLLM's retry path gives is its undecorated function, whose responses it never prices
                    trace_given = functools.partial(traced[given], litellm_prices=False)
                    patcher.replace(litellm, name, functools.partial(wrappers.with_traced_attempts, runtime=runtime,
                                                                     attempt=default, trace=trace_given))
            _patch_fan_outs(patcher)
            for name, is_async in router.ROUTER_ENDPOINTS:
                owner = router.endpoint_owner(Router, name)
                if owner is None:  # a Router we cannot patch: its attempts are still traced, without a router span
                    report_internal_error(f"tracing litellm.Router.{name}", LookupError(name))
                    continue
                patcher.replace(owner, name, functools.partial(
                    router.traced_async_router_call if is_async else router.traced_router_call, runtime,
                    endpoint=name))
            clients = sdk_retries.sdk_clients()
            if not clients:  # an OpenAI SDK without that method: its retries stay inside the call's one span
                report_internal_error("tracing the OpenAI SDK's retries", LookupError(sdk_retries.METHOD))
            for client, is_async in clients:
                patcher.replace(client, sdk_retries.METHOD, functools.partial(
                    sdk_retries.traced_async_backoff if is_async else sdk_retries.traced_backoff, runtime))
        except BaseException:
            self._unpatch()
            raise
        runtime.neighbours = LiteLLMNeighbours(litellm)
        runtime.neighbours.look()  # a tool set up before lmscope is named now, one set up after at its first call
        guarded("looking for LiteLLM's functions bound by name", warn_names_bound_before, originals)

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
        self.runtime = None


def _patch_fan_outs(patcher: Patcher) -> None:
    """The calls LiteLLM makes for one call of the app run in the app's context, each a span under the app's span
    (docs/litellm-internals.md §6): the sync `completion`'s fallbacks, in the event loop `run_async_function` starts
    (`_wrappers.in_callers_context`), and `model_list=`'s requests, on `batch_completion_models`' thread pool. A
    LiteLLM without one of them: those calls are spans of a trace of their own, the rest is traced as usual."""
    from .._thread_pools import context_carrying_executor
    from . import _wrappers as wrappers

    for module_name, name, wrap in (
            ("litellm.litellm_core_utils.fallback_utils", "run_async_function", wrappers.in_callers_context),
            ("litellm.batch_completion.main", "ThreadPoolExecutor", context_carrying_executor)):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        if module is None or not hasattr(module, name):
            report_internal_error(f"tracing LiteLLM's {module_name}", LookupError(name))
            continue
        patcher.replace(module, name, wrap)


_on_import = PatchOnImport("litellm")


__all__ = ["LiteLLMInstrumentor"]
