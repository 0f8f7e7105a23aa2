"""The four attribute sets of a DSPy span: module start and end, LM start and end.

`_runtime.py` calls each one once, at the point its values are known: the start sets go to `start_span`, the
end sets to `span.set_attributes` before the span ends. They read plain values (names, an `LMCall`, a `Spend`,
the settings attributes) and the call's own inputs and outputs, which they encode as JSON only when content is
captured (`content` is None otherwise). Keys are written in the order the tests and backends expect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...telemetry import _semconv as semconv
from ...telemetry._content import ContentPolicy, truncate
from ...telemetry._lm_call import LMCall
from ...telemetry._messages import input_message_attributes, output_message_attributes
from ...telemetry._spend import Spend
from ._attributes import (
    JsonText,
    document_attributes,
    json_text,
    lm_request_attributes,
    lm_result_attributes,
    provider_attributes,
    put_answer_attributes,
    rollup_attributes,
    to_json,
)
from ._naming import signature_text


def _put_content(attributes: dict[str, Any], value_key: str, mime_key: str, content: Any,
                 policy: ContentPolicy) -> None:
    """`content`: the captured input or output, or None (not captured); recorded as the policy allows."""
    if content is not None:
        attributes.update(encoded_content(value_key, to_json(content), policy))


def encoded_content(value_key: str, encoded: JsonText, policy: ContentPolicy) -> dict[str, Any]:
    """`input.value` or `output.value` (`value_key`) and its mime type, from the content's JSON `encoded`: scrubbed
    and cut as the policy says. The JSON (`json_snapshot`) is also the copy a span building content on export
    keeps."""
    text, redacted = policy.json(json_text(encoded), value_key)
    attributes: dict[str, Any] = {value_key: text, _MIME_KEYS[value_key]: semconv.MIME_JSON}
    if redacted:
        attributes[semconv.SCRUBBED] = True
    return attributes


_MIME_KEYS = {semconv.INPUT_VALUE: semconv.INPUT_MIME_TYPE, semconv.OUTPUT_VALUE: semconv.OUTPUT_MIME_TYPE}


def module_start_attributes(kind: str, class_name: str, path: str | None, aliases: tuple[str, ...],
                            call_index: int | None, signature: Any, compiled: bool, demos: int,
                            extra: Mapping[str, Any] | None, batch_index: int | None,
                            scoped: Mapping[str, Any] | None, settings: Callable[[], Mapping[str, Any]] | None,
                            content: Any, policy: ContentPolicy) -> dict[str, Any]:
    """`path` is None for steps that are not modules (tools); `settings` (a `settings_snapshot`) only on the outermost
    module spans; `call_index` only under a parent span, for other than batch items. Positional: a module span's
    `Later` keeps these values in one tuple, in this order."""
    attributes: dict[str, Any] = {semconv.SPAN_KIND: kind, semconv.MODULE_CLASS: class_name}
    if path is not None:
        attributes[semconv.MODULE_PATH] = path
    if aliases:
        attributes[semconv.MODULE_ALIASES] = aliases
    if call_index is not None:
        attributes[semconv.MODULE_CALL_INDEX] = call_index
    text = signature_text(signature)
    if text:
        attributes[semconv.MODULE_SIGNATURE] = truncate(text, policy.max_chars)  # a wide inline signature runs long
    if compiled:
        attributes[semconv.MODULE_COMPILED] = True
    if demos:
        attributes[semconv.MODULE_DEMOS] = demos
    if extra:
        attributes.update(extra)
    if batch_index is not None:
        attributes[semconv.BATCH_INDEX] = batch_index
    if scoped:
        attributes.update(scoped)
    if settings is not None:
        attributes.update(settings())
    _put_content(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, content, policy)
    return attributes


def module_end_attributes(totals: Spend, passages: Any, policy: ContentPolicy, content: Any) -> dict[str, Any]:
    """`passages`: what a retriever returned (None for other modules), listed as documents."""
    attributes = rollup_attributes(totals)
    if passages is not None:
        attributes.update(document_attributes(passages, policy))
    _put_content(attributes, semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, content, policy)
    return attributes


def module_output_attributes(encoded: JsonText, passages: Any, policy: ContentPolicy) -> dict[str, Any]:
    """A module's captured output, from its JSON `encoded`, and the documents a retriever returned (`passages`,
    None for other modules): what `module_end_attributes` records of them, built on export."""
    attributes = document_attributes(passages, policy) if passages is not None else {}
    attributes.update(encoded_content(semconv.OUTPUT_VALUE, encoded, policy))
    return attributes


def lm_start_attributes(model: str, provider: str | None, parameters: Mapping[str, Any],
                        scoped: Mapping[str, Any] | None, settings: Callable[[], Mapping[str, Any]], content: Any,
                        policy: ContentPolicy, tools: Any = None) -> dict[str, Any]:
    """`content`: the request's messages (a prompt string is one user message), None when inputs are not captured;
    recorded as `input.value` and as structured messages (`_messages.py`), with the `tools` offered."""
    attributes = lm_request_attributes(model, provider, parameters, policy)
    if scoped:
        attributes.update(scoped)
    attributes.update(settings())
    if content is not None:
        attributes.update(lm_input_attributes(content, tools, policy))
    return attributes


def lm_input_attributes(content: Any, tools: Any, policy: ContentPolicy) -> dict[str, Any]:
    """An LM call's captured request: `input.value` and the structured messages (a prompt string is one user
    message), with the `tools` offered."""
    attributes: dict[str, Any] = {}
    _put_content(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, content, policy)
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    attributes.update(input_message_attributes(messages, tools, policy))  # lmscope.scrubbed: only ever set true
    return attributes


def lm_output_attributes(content: Any, finish_reasons: Any, policy: ContentPolicy) -> dict[str, Any]:
    """An LM call's captured answers: `output.value` and the output messages."""
    attributes: dict[str, Any] = {}
    _put_content(attributes, semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, content, policy)
    attributes.update(output_message_attributes(content, finish_reasons, policy))
    return attributes


def lm_end_attributes(call: LMCall | None, content: Any, policy: ContentPolicy,
                      answered_by: str | None = None, children: Spend | None = None) -> dict[str, Any]:
    """`call` is None when DSPy never finished the call (it failed before `finalize`): no usage to report.
    `answered_by`: the provider of a model name without one, which only the answer told (`_providers.py`).
    `children`: the LM calls counted inside it, when the span gives way to them (`_lm_children.py`): their roll-up
    and `lmscope.usage.in_children` in place of the call's own usage and cost.

    A finished call also restates `lmscope.settings.cache` as what DSPy did for it, over the start value (the LM's
    `cache` setting): the call's own `cache` (`dspy.LM(cache=False)`, `config={"cache": False}`), and whether
    `dspy.configure_cache(...)` left DSPy a cache tier to use."""
    if call is None:
        attributes: dict[str, Any] = {}
    else:
        if children is None:
            attributes = lm_result_attributes(call, policy)
        else:
            attributes = {}
            put_answer_attributes(attributes, call, policy)
        attributes[_SETTINGS_CACHE] = call.cache_used
        if answered_by is not None:
            attributes.update(provider_attributes(answered_by))
    if children is not None:
        attributes.update(rollup_attributes(children))
        attributes[semconv.USAGE_IN_CHILDREN] = True
    if content is not None:
        attributes.update(lm_output_attributes(content, call.finish_reasons if call else None, policy))
    return attributes


_SETTINGS_CACHE = semconv.SETTINGS_PREFIX + "cache"
