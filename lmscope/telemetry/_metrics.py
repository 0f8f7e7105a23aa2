"""Metric instruments and what one LM call or one module call records on them.

Fed by the same hooks as the spans (an `LMCall` per LM call, one callback per module call), so the
metrics, the span attributes, `lmscope.track()` and `lmscope report` all add up the same numbers.

What one LM call records:
- a provider call (no DSPy cache hit): `gen_ai.client.operation.duration` (with `error.type` when it
  failed); when DSPy finished the call, `gen_ai.client.token.usage` once per token type (input, output; an
  embedding input only, as its span has no output tokens), `lmscope.usage.cached_tokens` when the provider read its
  prompt cache (a subset of input; a series appears with the first such call) and `gen_ai.usage.cost` when the
  price is known;
- a DSPy cache hit: no `gen_ai.*` point (it bills nothing and would drag latency percentiles to zero),
  but `lmscope.cache.saved` and `lmscope.cache.saved_tokens`;
- whenever DSPy's cache was consulted: `lmscope.cache.requests` with `lmscope.cache.result` hit|miss
  (and `lmscope.cache.layer` memory|disk on hits).
A module call records `lmscope.module.duration` (with `error.type` when it raised). A `dspy.Evaluate` run sets the
gauge `lmscope.evaluation.score` (per `lmscope.evaluation.metric`, the metric's name, and phase).

Attributes are low-cardinality by construction: operation, provider, request model, module path (bounded
by the program's structure), cache result/layer, error type (an exception class name) and `lmscope.phase`
(optimize, evaluate, serve). Never ids,
prompts or anything else that grows with traffic; the service is the resource's `service.name`.

As Prometheus scrapes them (opentelemetry-exporter-prometheus, `service_name` copied from the resource):
    gen_ai_client_operation_duration_seconds_{bucket,sum,count}
    gen_ai_client_token_usage_{bucket,sum,count}            gen_ai_token_type="input"|"output"
    gen_ai_usage_cost_USD_total
    lmscope_usage_cached_tokens_total
    lmscope_cache_requests_total                            lmscope_cache_result, lmscope_cache_layer
    lmscope_cache_saved_USD_total
    lmscope_cache_saved_tokens_total
    lmscope_module_duration_seconds_{bucket,sum,count}      lmscope_module_path
    lmscope_evaluation_score_percent                        lmscope_evaluation_metric
with labels gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, lmscope_module_path,
lmscope_phase, error_type, service_name, otel_scope_name="lmscope" (filter on it: LiteLLM's and OpenLIT's own
metrics use some of the same names).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeAlias

from opentelemetry.metrics import Meter

from . import _semconv as semconv
from ._content import ContentPolicy
from ._lm_call import LMCall
from ._lm_vendors import gen_ai_provider
from ._memo import BoundedMemo

Attributes = Mapping[str, Any]

_LMSeries: TypeAlias = tuple[str, str, str | None, str | None, str | None, str | None, str | None, str | None, str]
"""What tells one LM-call series from another: (operation, model, provider, module path, cache result, cache layer,
token type, error type, phase). A plain tuple, not a record: it is built for every point recorded."""
_ModuleSeries: TypeAlias = tuple[str, str | None, str]
"""(module path, error type, phase)."""


class MetricsRecorder:
    """The lmscope instruments on one meter; `record_lm_call` and `record_module` are the two hooks."""

    def __init__(self, meter: Meter, policy: ContentPolicy | None = None) -> None:
        """`policy`: what scrubs the model label (a model name may hold a key: `ft:gpt-4o:acme:sk-...`), as the LM
        spans' `gen_ai.request.model` is; the default policy when None."""
        self.operation_duration = meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS)
        self.token_usage = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=semconv.TOKEN_BUCKETS)
        self.cost = meter.create_counter(
            semconv.METRIC_COST, unit="USD", description="What LM calls were billed (calls with a known price)")
        self.cached_tokens = meter.create_counter(
            semconv.METRIC_CACHED_TOKENS, unit="{token}",
            description="Input tokens the provider read from its prompt cache (a subset of the input tokens)")
        self.cache_requests = meter.create_counter(
            semconv.METRIC_CACHE_REQUESTS, unit="{request}", description="LM calls that consulted DSPy's cache")
        self.cache_saved_usd = meter.create_counter(
            semconv.METRIC_CACHE_SAVED_USD, unit="USD",
            description="What DSPy cache hits would have cost: the original calls' price")
        self.cache_saved_tokens = meter.create_counter(
            semconv.METRIC_CACHE_SAVED_TOKENS, unit="{token}",
            description="Tokens DSPy cache hits did not spend (input + output of the original calls)")
        self.module_duration = meter.create_histogram(
            semconv.METRIC_MODULE_DURATION, unit="s", description="DSPy module call duration",
            explicit_bucket_boundaries_advisory=semconv.MODULE_DURATION_BUCKETS)
        self.evaluation_score = meter.create_gauge(
            semconv.METRIC_EVALUATION_SCORE, unit="%",
            description="Score of the latest dspy.Evaluate run, per metric (the metric's average, in percent)")
        # The SDK keys its aggregations by attribute set; reusing one dict per set saves building it per call.
        # The sets are few (models x module paths x outcomes); the memo's bound only limits misuse.
        self._lm_attributes = BoundedMemo(functools.partial(_lm_series_attributes,
                                                            ContentPolicy() if policy is None else policy))
        self._module_attributes = BoundedMemo(_module_series_attributes)

    def record_lm_call(self, call: LMCall) -> None:
        if call.cache_hit:
            hit = self._attributes(call, cache_result=semconv.CACHE_RESULT_HIT, layer=call.cache_layer)
            self.cache_requests.add(1, hit)
            if call.saved_usd is not None:
                self.cache_saved_usd.add(call.saved_usd, hit)
            if call.saved_tokens is not None:
                self.cache_saved_tokens.add(call.saved_tokens, hit)
            return
        if call.cache_used:
            self.cache_requests.add(1, self._attributes(call, cache_result=semconv.CACHE_RESULT_MISS))
        base = self._attributes(call)
        failed = call.error_type is not None
        self.operation_duration.record(
            call.duration_s, self._attributes(call, error_type=call.error_type) if failed else base)
        if call.engine is None or (failed and not (call.input_tokens or call.output_tokens)):
            # Its usage is unknown, not 0: DSPy never finished the call (finalize did not run), or the provider
            # refused the request (LiteLLM raised before any response).
            return
        self.token_usage.record(
            call.input_tokens, self._attributes(call, token_type=semconv.GEN_AI_TOKEN_TYPE_INPUT))
        if call.operation != semconv.GEN_AI_OPERATION_EMBEDDINGS:  # an embedding has no output, not 0 output tokens
            self.token_usage.record(
                call.output_tokens, self._attributes(call, token_type=semconv.GEN_AI_TOKEN_TYPE_OUTPUT))
        if call.cached_tokens:  # most calls read no prompt cache: skipping the 0 saves a measurement (~7 µs)
            self.cached_tokens.add(call.cached_tokens, base)
        if call.cost_usd is not None:
            self.cost.add(call.cost_usd, base)

    def record_module(self, path: str, duration_s: float, error_type: str | None, phase: str) -> None:
        self.module_duration.record(duration_s, self._module_attributes((path, error_type, phase)))

    def record_evaluation(self, metric: str, score: float, phase: str) -> None:
        self.evaluation_score.set(score, {semconv.EVALUATION_METRIC: metric, semconv.PHASE: phase})

    def _attributes(self, call: LMCall, *, cache_result: str | None = None, layer: str | None = None,
                    token_type: str | None = None, error_type: str | None = None) -> Attributes:
        return self._lm_attributes((call.operation, call.model, call.provider, call.module_path, cache_result, layer,
                                    token_type, error_type, call.phase))


def _lm_series_attributes(policy: ContentPolicy, series: _LMSeries) -> Attributes:
    operation, model, provider, module_path, cache_result, layer, token_type, error_type, phase = series
    attributes = {semconv.GEN_AI_OPERATION_NAME: operation, semconv.GEN_AI_REQUEST_MODEL: policy.name(model)[0],
                  semconv.PHASE: phase}
    if provider is not None:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = gen_ai_provider(provider)
    if module_path:
        attributes[semconv.MODULE_PATH] = module_path
    if cache_result is not None:
        attributes[semconv.CACHE_RESULT] = cache_result
    if layer is not None:
        attributes[semconv.CACHE_LAYER] = layer
    if token_type is not None:
        attributes[semconv.GEN_AI_TOKEN_TYPE] = token_type
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    return attributes


def _module_series_attributes(series: _ModuleSeries) -> Attributes:
    path, error_type, phase = series
    attributes = {semconv.MODULE_PATH: path, semconv.PHASE: phase}
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    return attributes
