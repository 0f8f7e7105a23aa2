"""What every lmscope instrumentor resolves from its `instrument(**kwargs)`: tracer, content policy, listeners.

One resolution for DSPy's and LiteLLM's instrumentors, so `opentelemetry-instrument` (no keyword), an app
(`tracer_provider=`, `meter_provider=`, `capture_content=`) and `lmscope.instrument()` (a ready `tracer`, its
listeners) get the same behaviour from both.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Tracer

from .._version import __version__
from ..telemetry import _semconv as semconv
from ..telemetry._content import ContentPolicy, resolved_content_policy
from ..telemetry._context_attributes import use_policy
from ..telemetry._following_tracer import FollowingTracer
from ..telemetry._lm_call import LMCall
from ..telemetry._span_ids import with_private_ids

LMCallListener = Callable[[LMCall], None]
ModuleListener = Callable[[str, float, "str | None", str], None]
"""Called at every module (or container) span end: (module path, duration in seconds, error type or None, phase)."""
EvaluationListener = Callable[[str, float, str], None]
"""Called when a `dspy.Evaluate` run returns its score: (metric name, score in %, phase)."""


@dataclass
class InstrumentorSetup:
    tracer: Tracer
    content: ContentPolicy
    lm_call_listeners: list[LMCallListener] = field(default_factory=list)
    module_listeners: list[ModuleListener] = field(default_factory=list)
    evaluation_listeners: list[EvaluationListener] = field(default_factory=list)


def _tracer(name: str, provider: trace.TracerProvider | None) -> Tracer:
    """A tracer of `provider` (else the global one) drawing span ids from lmscope's own generator (`_span_ids.py`).
    Before the app sets a global provider, the API's proxy tracer would later hand spans to a tracer with the
    provider's generator: the app's tracer is taken once it is there instead, as lmscope's own tracers do."""
    if provider is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        def once_set(tracer_name: str, version: str | None) -> Tracer | None:
            global_provider = trace.get_tracer_provider()
            if isinstance(global_provider, trace.ProxyTracerProvider):
                return None
            return with_private_ids(global_provider.get_tracer(tracer_name, version, schema_url=semconv.SCHEMA_URL))

        return FollowingTracer(name, __version__, trace.get_tracer(name, __version__, schema_url=semconv.SCHEMA_URL),
                               once_set)
    return with_private_ids(trace.get_tracer(name, __version__, provider, schema_url=semconv.SCHEMA_URL))


def resolve_setup(kwargs: Mapping[str, Any], tracer_name: str) -> InstrumentorSetup:
    """The keywords of `BaseInstrumentor.instrument()` as lmscope's instrumentors read them:

    - `tracer`: a ready Tracer (`lmscope.instrument()` passes its own); then nothing is taken from the global
      providers, and metrics only from `meter_provider`. Else a tracer of `tracer_provider` (default: global);
    - `capture_content`: a bool, a `ContentPolicy`, or None (from the environment, as `lmscope.instrument()`);
    - `lm_call_listeners`, `module_listeners`, `evaluation_listeners`: hooks called once per LM call / module call /
      evaluation run;
    - `meter_provider`: lmscope's metrics are recorded there, else on the global one only when it is an SDK
      MeterProvider (the API's default drops every point, and skipping the recorder skips its whole cost).
    """
    tracer: Tracer | None = kwargs.get("tracer")
    if tracer is None:
        tracer = _tracer(tracer_name, kwargs.get("tracer_provider"))
    capture_content: bool | ContentPolicy | None = kwargs.get("capture_content")
    content = capture_content if isinstance(capture_content, ContentPolicy) else resolved_content_policy(
        capture_content)
    use_policy(content)  # what `lmscope.context` blocks write for OpenInference's instrumentors, scrubbed like ours
    setup = InstrumentorSetup(tracer, content, list(kwargs.get("lm_call_listeners") or ()),
                              list(kwargs.get("module_listeners") or ()),
                              list(kwargs.get("evaluation_listeners") or ()))
    meter_provider = kwargs.get("meter_provider")
    if meter_provider is None and kwargs.get("tracer") is None:
        meter_provider = _sdk_meter_provider()
    if meter_provider is not None:
        from ..telemetry._metrics import MetricsRecorder

        recorder = MetricsRecorder(metrics.get_meter(semconv.METER_NAME, __version__, meter_provider), content)
        setup.lm_call_listeners.append(recorder.record_lm_call)
        setup.module_listeners.append(recorder.record_module)
        setup.evaluation_listeners.append(recorder.record_evaluation)
    return setup


def _sdk_meter_provider() -> metrics.MeterProvider | None:
    """The global MeterProvider when it is an SDK one (the app's, or the distro's), else None: no metrics."""
    current = metrics.get_meter_provider()
    try:
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        return None
    return current if isinstance(current, MeterProvider) else None


class PatchOnImport:
    """Runs an instrumentor's patches once the app has imported `module`: at once if it has, else from a post-import
    hook. Instrumenting never imports the library itself (DSPy and LiteLLM take ~2 s each)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._pending: Callable[[], None] | None = None
        self._watching = False
        """A hook is registered (wrapt cannot remove one, and drops it once it fired)."""

    def schedule(self, patch: Callable[[], None]) -> None:
        self._pending = None
        if self.module in sys.modules:
            patch()
            return
        if importlib.util.find_spec(self.module) is None:
            return  # `opentelemetry-instrument` loads every entry point: no such library here, nothing to wait for
        self._pending = patch
        if not self._watching:
            self._watching = True
            import wrapt

            wrapt.register_post_import_hook(self._imported, self.module)

    def cancel(self) -> None:
        self._pending = None

    def _imported(self, _module: object) -> None:
        self._watching = False
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending()
        except Exception as exc:  # noqa: BLE001 - raised here it would come out of the app's `import <module>`
            from ..telemetry._internal_errors import report_internal_error

            report_internal_error(f"instrumenting {self.module} ({self.module} runs untraced)", exc)
