"""Every span attribute, span name part and metric name lmscope writes, in one place.

Instrumentors, the console tree, the report, dashboards and tests read names from here; nothing spells
a key by hand elsewhere. OpenInference keys come from `openinference-semantic-conventions`; OTel GenAI
keys follow semantic conventions v1.41 (the version Langfuse, MLflow and Phoenix read today); our own
keys live under `lmscope.`.
"""

from __future__ import annotations

from typing import Final

from openinference.semconv.resource import ResourceAttributes
from openinference.semconv.trace import (
    DocumentAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)

# --- OpenInference -------------------------------------------------------------------------------
SPAN_KIND: Final = SpanAttributes.OPENINFERENCE_SPAN_KIND
KIND_CHAIN: Final = OpenInferenceSpanKindValues.CHAIN.value
KIND_LLM: Final = OpenInferenceSpanKindValues.LLM.value
KIND_RETRIEVER: Final = OpenInferenceSpanKindValues.RETRIEVER.value
KIND_TOOL: Final = OpenInferenceSpanKindValues.TOOL.value
KIND_AGENT: Final = OpenInferenceSpanKindValues.AGENT.value
KIND_EVALUATOR: Final = OpenInferenceSpanKindValues.EVALUATOR.value
KIND_EMBEDDING: Final = OpenInferenceSpanKindValues.EMBEDDING.value
LM_CALL_KINDS: Final = frozenset({KIND_LLM, KIND_EMBEDDING})
"""Span kinds of one billed provider call each (chat and text completions, embeddings): what reports count."""
EMBEDDING_MODEL_NAME: Final = SpanAttributes.EMBEDDING_MODEL_NAME

INPUT_VALUE: Final = SpanAttributes.INPUT_VALUE
INPUT_MIME_TYPE: Final = SpanAttributes.INPUT_MIME_TYPE
OUTPUT_VALUE: Final = SpanAttributes.OUTPUT_VALUE
OUTPUT_MIME_TYPE: Final = SpanAttributes.OUTPUT_MIME_TYPE
MIME_JSON: Final = "application/json"

LLM_MODEL_NAME: Final = SpanAttributes.LLM_MODEL_NAME
LLM_PROVIDER: Final = SpanAttributes.LLM_PROVIDER
LLM_INVOCATION_PARAMETERS: Final = SpanAttributes.LLM_INVOCATION_PARAMETERS
LLM_TOKEN_COUNT_PROMPT: Final = SpanAttributes.LLM_TOKEN_COUNT_PROMPT
LLM_TOKEN_COUNT_COMPLETION: Final = SpanAttributes.LLM_TOKEN_COUNT_COMPLETION
LLM_TOKEN_COUNT_TOTAL: Final = SpanAttributes.LLM_TOKEN_COUNT_TOTAL
LLM_TOKEN_COUNT_CACHE_READ: Final = SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ
LLM_TOKEN_COUNT_REASONING: Final = SpanAttributes.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING
LLM_COST_PROMPT: Final = SpanAttributes.LLM_COST_PROMPT
LLM_COST_COMPLETION: Final = SpanAttributes.LLM_COST_COMPLETION
LLM_COST_TOTAL: Final = SpanAttributes.LLM_COST_TOTAL
LLM_INPUT_MESSAGES: Final = SpanAttributes.LLM_INPUT_MESSAGES
"""Prefix of the flattened request messages: `llm.input_messages.{i}.message.role|content|...`."""
LLM_OUTPUT_MESSAGES: Final = SpanAttributes.LLM_OUTPUT_MESSAGES
"""Prefix of the flattened answers: `llm.output_messages.{i}.message.role|content|tool_calls...`."""
LLM_TOOLS: Final = SpanAttributes.LLM_TOOLS
"""Prefix of the tools offered to the LM: `llm.tools.{i}.tool.json_schema`."""

RETRIEVAL_DOCUMENTS: Final = SpanAttributes.RETRIEVAL_DOCUMENTS
DOCUMENT_ID: Final = DocumentAttributes.DOCUMENT_ID
DOCUMENT_SCORE: Final = DocumentAttributes.DOCUMENT_SCORE
DOCUMENT_CONTENT: Final = DocumentAttributes.DOCUMENT_CONTENT

TOOL_NAME: Final = SpanAttributes.TOOL_NAME
TOOL_DESCRIPTION: Final = SpanAttributes.TOOL_DESCRIPTION
TOOL_PARAMETERS: Final = SpanAttributes.TOOL_PARAMETERS
"""JSON schema of the tool's arguments, as the LM is shown it (`{"type": "object", "properties": ...}`)."""

SESSION_ID: Final = SpanAttributes.SESSION_ID
USER_ID: Final = SpanAttributes.USER_ID
METADATA: Final = SpanAttributes.METADATA
TAG_TAGS: Final = SpanAttributes.TAG_TAGS

PROJECT_NAME: Final = ResourceAttributes.PROJECT_NAME
"""A resource attribute, not a span's: the project Phoenix files the spans under (the `phoenix` preset sets it)."""

# --- OTel GenAI (v1.41) --------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
"""Seconds from the request to the first chunk of a streamed answer."""
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""JSON: the request's non-system messages, `[{"role", "parts": [{"type": "text", "content"}, ...]}]`."""
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
"""JSON: the answers, `[{"role": "assistant", "parts": [...], "finish_reason"}]`."""
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
"""JSON: the parts of the request's system messages, `[{"type": "text", "content"}]`."""
"""USD. Not in the spec; the de facto key that Langfuse ingests and LiteLLM/OpenLIT emit."""
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_TYPE_FUNCTION: Final = "function"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
"""The id the LM gave the tool call a native tool span runs (`ToolCall.execute`)."""
GEN_AI_OPERATION_CHAT: Final = "chat"
GEN_AI_OPERATION_TEXT_COMPLETION: Final = "text_completion"
GEN_AI_OPERATION_RETRIEVAL: Final = "retrieval"
GEN_AI_OPERATION_EMBEDDINGS: Final = "embeddings"
GEN_AI_OPERATION_EXECUTE_TOOL: Final = "execute_tool"
ERROR_TYPE: Final = "error.type"

# --- lmscope -------------------------------------------------------------------------------------
LMSCOPE_PREFIX: Final = "lmscope."
"""Every key lmscope adds of its own starts so."""
MODULE_PATH: Final = "lmscope.module.path"
MODULE_CLASS: Final = "lmscope.module.class"
MODULE_SIGNATURE: Final = "lmscope.module.signature"
MODULE_COMPILED: Final = "lmscope.module.compiled"
MODULE_CALL_INDEX: Final = "lmscope.module.call_index"
"""On a module span under another span: how many calls of the same module path that parent made before (0, 1, ...).
Not on batch items, which carry `lmscope.batch.index`."""
MODULE_ALIASES: Final = "lmscope.module.aliases"
"""On a module span: the other full paths under which its parent holds the same object (the path is the first)."""
BATCH_INDEX: Final = "lmscope.batch.index"
BATCH_NUM_THREADS: Final = "lmscope.batch.num_threads"
"""On `batch`/`Parallel`/`Evaluate` spans: the thread count DSPy's ParallelExecutor ran with (argument or setting)."""
USAGE_ESTIMATED: Final = "lmscope.usage.estimated"
"""True when a call's tokens were counted by LiteLLM's tokenizer, not billed by the provider (a stream without
a usage chunk)."""
STREAM_ABANDONED: Final = "lmscope.stream.abandoned"
"""True on a streamed call the program closed or dropped before its end (tokens: what arrived, estimated; none for a
`dspy.streamify` call, which DSPy cancels)."""
EMBEDDING_BATCH_SIZE: Final = "lmscope.embedding.batch_size"
"""On an EMBEDDING span of a local embedding function: how many texts its call embedded (one `dspy.Embedder` batch)."""
EMBEDDING_LOCAL: Final = "lmscope.embedding.local"
"""True on an EMBEDDING span of a local embedding function (`dspy.Embedder(fn)`): no provider request, no tokens,
no cost, and not an LM call (`_tree.is_lm_call`): a provider call the function makes is a span of its own below it."""
RETRIEVAL_K: Final = "lmscope.retrieval.k"
"""On a RETRIEVER span: how many documents the call asked for (`k`), when the retriever takes one per call."""
RETRIEVAL_DOCUMENT_COUNT: Final = "lmscope.retrieval.documents"
"""On a RETRIEVER span: how many documents the retriever returned; the span lists the first 32 of them."""
BATCH_SIZE: Final = "lmscope.batch.size"
"""Items a batch, Parallel or Evaluate run was given (examples, or (module, example) pairs)."""
BATCH_FAILED: Final = "lmscope.batch.failed"
"""Items of the run that failed (DSPy left None, or returned them as failed examples)."""
EVALUATE_SCORE: Final = "lmscope.evaluation.score"
"""The score `dspy.Evaluate` returned for the run (its metric's average, in percent)."""
PHASE: Final = "lmscope.phase"
"""On every span and metric point: what the program was doing. `optimize` inside a `Teleprompter.compile`,
`evaluate` inside `dspy.Evaluate` (outside a compile), `serve` otherwise. Low-cardinality by construction."""
PHASE_OPTIMIZE: Final = "optimize"
PHASE_EVALUATE: Final = "evaluate"
PHASE_SERVE: Final = "serve"

# --- optimizers (`Teleprompter.compile`) and evaluations (`dspy.Evaluate`) ----------------------------------------
OPTIMIZE_SPAN_NAME_PREFIX: Final = "optimize "
"""`optimize {Optimizer class}`: the root of a compile's trace."""
OPTIMIZER_NAME: Final = "lmscope.optimizer.name"
OPTIMIZER_PARAMS_PREFIX: Final = "lmscope.optimizer.params."
"""`lmscope.optimizer.params.<name>`: the non-secret scalar parameters (`max_bootstrapped_demos`, `auto`)."""
OPTIMIZER_TRAINSET_SIZE: Final = "lmscope.optimizer.trainset_size"
OPTIMIZER_VALSET_SIZE: Final = "lmscope.optimizer.valset_size"
OPTIMIZER_METRIC: Final = "lmscope.optimizer.metric"
"""The metric's name (its `__name__`, else its class name)."""
OPTIMIZER_STUDENT: Final = "lmscope.optimizer.student"
"""Class name of the program being compiled."""
OPTIMIZER_TEACHER: Final = "lmscope.optimizer.teacher"
OPTIMIZER_BEST_SCORE: Final = "lmscope.optimizer.best_score"
OPTIMIZER_DEMOS: Final = "lmscope.optimizer.demos"
"""On the compile's root: the number of demos per predictor of the returned program (a JSON object, path -> count)."""
OPTIMIZER_TRIAL: Final = "lmscope.optimizer.trial"
"""On a `trial {index}` span: the candidate's index, 0, 1, 2 ... in the order the optimizer tried them."""
OPTIMIZER_CANDIDATE: Final = "lmscope.optimizer.candidate"
"""What identifies the candidate a trial scored (a seed, a parameter set, a program index), as text."""
OPTIMIZER_SCORE: Final = "lmscope.optimizer.score"
OPTIMIZER_BEST_SO_FAR: Final = "lmscope.optimizer.best_so_far"
"""True on a trial whose score was the best so far when it ended."""
OPTIMIZER_EXAMPLE_INDEX: Final = "lmscope.optimizer.example_index"
"""On a `bootstrap {index}` span: the training example's position in the trainset."""
OPTIMIZER_METRIC_PASSED: Final = "lmscope.optimizer.metric_passed"
"""On a bootstrap span: the metric's verdict on the teacher's trace."""
OPTIMIZER_DEMO_ACCEPTED: Final = "lmscope.optimizer.demo_accepted"
"""On a bootstrap span: whether the example's trace became a demo."""
OPTIMIZER_INSTRUCTION: Final = "lmscope.optimizer.instruction"
"""On a proposal span: the proposed instruction (content, under the capture rules)."""
OPTIMIZER_PREDICTOR: Final = "lmscope.optimizer.predictor"
"""On a proposal span: the path of the predictor the instruction is for."""
MODULE_DEMOS: Final = "lmscope.module.demos"
"""On a module span of a compiled predictor: how many demos it holds."""
EVALUATION_EXAMPLES: Final = "lmscope.evaluation.examples"
"""On an Evaluate span: the devset's size."""
EVALUATION_ERRORS: Final = "lmscope.evaluation.errors"
"""On an Evaluate span: examples whose program or metric raised."""
EVALUATION_METRIC: Final = "lmscope.evaluation.metric"
EVALUATION_EXAMPLE_INDEX: Final = "lmscope.evaluation.example_index"
EVALUATION_METRIC_VALUE: Final = "lmscope.evaluation.metric_value"
"""On an example span (and its `metric {name}` span): what the metric returned, a number or a bool."""
METRIC_SPAN_NAME_PREFIX: Final = "metric "

LM_ENGINE: Final = "lmscope.lm.engine"
"""Which DSPy engine served the call: native, litellm, dummy, legacy or the engine's class name."""
LM_REQUESTS: Final = "lmscope.lm.requests"
"""On a DSPy LM span whose provider requests failed and were sent again (DSPy's retries, the OpenAI SDK's beneath
LiteLLM): every request the call made, the failed ones included, each of those an `exception` event on the span.
Absent: the call made the requests its answer came from (one; one per candidate on DSPy's native engine with n > 1),
or none for a cache hit. Tokens and cost are the answered requests' only."""
USAGE_IN_CHILDREN: Final = "lmscope.usage.in_children"
"""On a DSPy LM span whose request the LM's own code made through calls lmscope counts on spans of their own (a
custom `BaseLM` or DSPy engine calling `litellm.completion`, once or more): true. Those child LM spans carry the tokens
and cost; this span has none of its own (no gen_ai.usage.*, llm.token_count.*, cost or `lmscope.cache.hit`), only
their roll-up under the module keys below, and is not counted as an LM call."""
COST_SOURCE: Final = "lmscope.cost.source"
"""Who priced the call: provider | litellm | dspy | lmscope."""
COST_UNKNOWN: Final = "lmscope.cost.unknown"
CACHE_HIT: Final = "lmscope.cache.hit"
CACHE_LAYER: Final = "lmscope.cache.layer"
"""memory | disk (DSPy's response cache tiers)."""
CACHE_SAVED_USD: Final = "lmscope.cache.saved_usd"
CACHE_SAVED_TOKENS: Final = "lmscope.cache.saved_tokens"

# Roll-ups on module spans: deliberately not gen_ai.usage.* / llm.*, which backends would sum again.
USAGE_INPUT_TOKENS: Final = "lmscope.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "lmscope.usage.output_tokens"
USAGE_CACHED_TOKENS: Final = "lmscope.usage.cached_tokens"
COST_TOTAL_USD: Final = "lmscope.cost.total_usd"
LM_CALLS: Final = "lmscope.lm.calls"
CACHE_HITS: Final = "lmscope.cache.hits"
CACHE_SAVED_TOTAL_USD: Final = "lmscope.cache.saved_total_usd"

# On the span of one `litellm.Router` call (`router {model group}`, a CHAIN span over its deployment attempts, which
# are the LM spans). It carries the module roll-ups above, never gen_ai.usage.*: the attempts are what is billed.
ROUTER_SPAN_NAME_PREFIX: Final = "router "
ROUTER_MODEL_GROUP: Final = "lmscope.router.model_group"
"""The model name the app asked the Router for (a model group, or an alias of one)."""
ROUTER_ENDPOINT: Final = "lmscope.router.endpoint"
"""The Router method called: completion | acompletion | embedding | aembedding."""
ROUTER_ATTEMPTS: Final = "lmscope.router.attempts"
"""Provider calls the Router made for this call: the first attempt, retries and fallbacks (each an LM span)."""
ROUTER_MODEL: Final = "lmscope.router.model"
"""The model of the deployment that answered (as its LM span's `gen_ai.request.model`); absent if none did."""

SETTINGS_PREFIX: Final = "lmscope.settings."
SETTINGS_OVERRIDES: Final = "lmscope.settings.overrides"
"""The settings keys an active `dspy.context(...)` set (string array)."""

SCRUBBED: Final = "lmscope.scrubbed"
"""True on a span where lmscope redacted a credential from captured content (never set to false)."""

ADAPTER_EVENT_FALLBACK: Final = "lmscope.adapter.fallback"
"""Span event: ChatAdapter failed to parse and DSPy retried with JSONAdapter."""
ADAPTER_NAME: Final = "lmscope.adapter.name"
"""On an LM span made by an adapter DSPy fell back to: that adapter's class (`JSONAdapter`)."""
ADAPTER_FALLBACK_FROM: Final = "lmscope.adapter.fallback_from"
"""With `lmscope.adapter.name`: the class of the adapter whose parse failed (`ChatAdapter`)."""

LM_SPAN_NAME_PREFIX: Final = "chat "

# --- metrics -------------------------------------------------------------------------------------
# Names and units as written here; Prometheus sees them translated (dots -> `_`, unit suffix, counters
# `_total`): the exact series names are listed in telemetry/_metrics.py.
METER_NAME: Final = "lmscope"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.41.0"
"""The semantic conventions version lmscope's GenAI attributes follow: the schema URL of its tracer's scope."""
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_COST: Final = "gen_ai.usage.cost"
"""USD, a counter. Not in the spec (PR semantic-conventions-genai#443 is open); LiteLLM and OpenLIT emit a
histogram of that name, which Prometheus names `..._USD_bucket/_sum/_count`: ours is `..._USD_total`."""
METRIC_CACHED_TOKENS: Final = "lmscope.usage.cached_tokens"
"""Prompt tokens read from the provider's prompt cache: a subset of the input tokens, not a token type."""
METRIC_CACHE_REQUESTS: Final = "lmscope.cache.requests"
METRIC_CACHE_SAVED_USD: Final = "lmscope.cache.saved"
METRIC_CACHE_SAVED_TOKENS: Final = "lmscope.cache.saved_tokens"
METRIC_MODULE_DURATION: Final = "lmscope.module.duration"
METRIC_EVALUATION_SCORE: Final = "lmscope.evaluation.score"
"""Gauge, %: the score of the latest `dspy.Evaluate` run, per metric name (`lmscope.evaluation.metric`) and phase."""

GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TOKEN_TYPE_INPUT: Final = "input"
GEN_AI_TOKEN_TYPE_OUTPUT: Final = "output"
CACHE_RESULT: Final = "lmscope.cache.result"
"""Metric attribute: hit | miss (a span says the same with the boolean lmscope.cache.hit)."""
CACHE_RESULT_HIT: Final = "hit"
CACHE_RESULT_MISS: Final = "miss"

# OTel GenAI v1.41 explicit bucket boundaries.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
MODULE_DURATION_BUCKETS: Final = (0.001, 0.005, *DURATION_BUCKETS, 163.84, 327.68, 655.36)
"""The spec's LM-call buckets, widened both ways: a module may be a retriever taking 1 ms or a batch taking minutes."""

__all__ = sorted(name for name in dir() if name.isupper())
"""What `lmscope.semconv` publishes: every name above."""
