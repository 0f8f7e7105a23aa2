"""The four attribute sets of a DSPy span (module start and end, LM start and end), from snapshots.

`_runtime.py` takes the snapshots while the call runs and defers these builders
(telemetry/_light_span.py); they run when the span's attributes are first read, usually on the export
thread. Every argument is immutable by then: strings and numbers, a settings snapshot, a `Spend` copy, an
`LMCall` nobody changes after its span ends, captured content as `content_snapshot` copies or JSON text (the
user's objects may change after the call). Keys are written in the order the eager code wrote them.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...telemetry import _semconv as semconv
from ...telemetry._lm_call import LMCall
from ...telemetry._spend import Spend
from ._attributes import (content_json, document_attributes, lm_request_attributes, lm_result_attributes,
                          rollup_attributes)
from ._naming import signature_text
from ._settings import SettingsSnapshot, settings_attributes

def _put_content(attributes: dict[str, Any], value_key: str, mime_key: str, content: Any) -> None:
    """`content`: what `content_snapshot` returned, or None (not captured)."""
    if content is not None:
        attributes[value_key] = content_json(content)
        attributes[mime_key] = semconv.MIME_JSON


def module_start_attributes(kind: str, class_name: str, path: str | None, facts: tuple[Any, bool],
                            extra: Mapping[str, Any] | None, batch_index: int | None,
                            scoped: Mapping[str, Any] | None, settings: SettingsSnapshot | None,
                            content: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.SPAN_KIND: kind, semconv.MODULE_CLASS: class_name}
    if path is not None:
        attributes[semconv.MODULE_PATH] = path
    signature, compiled = facts  # `_naming.module_facts`
    text = signature_text(signature)
    if text:
        attributes[semconv.MODULE_SIGNATURE] = text
    if compiled:
        attributes[semconv.MODULE_COMPILED] = True
    if extra:
        attributes.update(extra)
    if batch_index is not None:
        attributes[semconv.BATCH_INDEX] = batch_index
    if scoped:
        attributes.update(scoped)
    if settings is not None:
        attributes.update(settings_attributes(settings))
    _put_content(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, content)
    return attributes


def module_end_attributes(totals: Spend, documents: tuple[str, ...] | dict[str, Any] | None, capture_content: bool,
                          content: Any) -> dict[str, Any]:
    """`documents`: a retriever's passages as strings, or their attributes already built."""
    attributes = rollup_attributes(totals)
    if type(documents) is tuple:
        attributes.update(document_attributes(documents, capture_content))
    elif documents:
        attributes.update(documents)
    _put_content(attributes, semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, content)
    return attributes


def lm_start_attributes(model: str, provider: str | None, parameters: Mapping[str, Any],
                        scoped: Mapping[str, Any] | None, settings: SettingsSnapshot, content: Any) -> dict[str, Any]:
    attributes = lm_request_attributes(model, provider, parameters)
    if scoped:
        attributes.update(scoped)
    attributes.update(settings_attributes(settings))
    _put_content(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, content)
    return attributes


def lm_end_attributes(call: LMCall | None, content: Any) -> dict[str, Any]:
    attributes = lm_result_attributes(call) if call is not None else {}
    _put_content(attributes, semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, content)
    return attributes

