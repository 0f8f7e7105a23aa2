"""Pure attribute builders: plain values in, `{key: value}` out. No spans, no DSPy imports."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...telemetry import _semconv as semconv
from ...telemetry._binary import describe_base64, describe_bytes
from ...telemetry._content import ContentPolicy
from ...telemetry._json import make_encoder, writable_int
from ...telemetry._lm_call import LMCall
from ...telemetry._lm_vendors import gen_ai_provider, openinference_provider
from ...telemetry._memo import BoundedMemo
from ...telemetry._scrub import Scrubber
from ...telemetry._scrub_rules import describe_binary, is_credential_key
from ...telemetry._spend import Spend

# Request parameters worth recording. An allowlist, not a denylist: `lm.kwargs` also holds api_key,
# api_base and headers, and a new secret-bearing key must never slip through by default.
_REQUEST_PARAMETERS = ("temperature", "max_tokens", "max_completion_tokens", "max_output_tokens", "top_p", "n", "stop",
                       "seed", "frequency_penalty", "presence_penalty", "reasoning_effort", "rollout_id",
                       "num_retries")
_GEN_AI_REQUEST = {"temperature": semconv.GEN_AI_REQUEST_TEMPERATURE, "top_p": semconv.GEN_AI_REQUEST_TOP_P,
                   "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
                   "max_completion_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
                   "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,  # the Responses API's name
                   "seed": semconv.GEN_AI_REQUEST_SEED,
                   "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
                   "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY}
_SECRET_MARKERS = ("key", "secret", "token", "password", "auth", "credential", "header", "api_base", "base_url")
_MAX_DOCUMENTS = 32
MAX_HIDDEN_ID_CHARS = 256
"""The longest document id recorded when outputs are not captured: a URL or a key, not a passage."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):  # described, never copied (str() would be its repr)
        return describe_bytes(value)
    media = _media_kind(type(value))
    if media is not None:
        return _describe_media(value, media)
    method = _conversion(type(value))
    if method is not None:
        try:
            return getattr(value, method)()
        except Exception:  # noqa: BLE001 - fall back to str below
            pass
    # Fields by name, so the scrubber sees `password` as a key (their str() would hide it in a repr).
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name, None) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):  # a MappingProxyType, a custom Mapping: not a dict to the encoder
        return dict(value)
    return safe_str(value)


def _conversion_method(cls: type) -> str | None:
    """The method that gives an object's fields: `toDict` for DSPy's Example and Prediction, `model_dump` for a
    pydantic model (found by name: this module imports neither); None for any other class, whose method of that name
    is the program's own, not lmscope's to call (an RPC proxy would send a request, a `MagicMock` record a call)."""
    for base in cls.__mro__:
        if base.__qualname__ == "Example" and base.__module__ == "dspy.primitives.example":
            return "toDict"
        if base.__qualname__ == "BaseModel" and base.__module__ == "pydantic.main":
            return "model_dump"
    return None


_conversion: BoundedMemo[type, str | None] = BoundedMemo(_conversion_method)


def _dspy_media(cls: type) -> str | None:
    """"Image" or "Audio" for DSPy's media types (found by name: this module imports no DSPy), else None."""
    if cls.__name__ in ("Image", "Audio") and cls.__module__.startswith("dspy.adapters.types"):
        return cls.__name__
    return None


_media_kind: BoundedMemo[type, str | None] = BoundedMemo(_dspy_media)


def _describe_media(value: Any, kind: str) -> str:
    """A `dspy.Image` or `dspy.Audio` as the text content capture records: its URL, with inline data described.

    Their `model_dump()` is the content-part list DSPy sends the LM, base64 and all (~400 KB for a 300 KB PNG)."""
    if kind == "Image":
        return describe_binary(str(getattr(value, "url", "")))
    data, audio_format = getattr(value, "data", None), getattr(value, "audio_format", None)
    if not isinstance(data, str):
        return "[audio]"
    return describe_base64(data, f"audio/{audio_format}" if audio_format else None) or "[audio]"


_encode = make_encoder(_jsonable)
"""JSON for content: anything JSON does not know goes through `_jsonable` (`telemetry/_json.py`)."""


def to_json(value: Any) -> str:
    """JSON for `input.value`/`output.value`; anything JSON does not know becomes its str()."""
    try:
        if type(value) in _NATIVE:  # LM messages and outputs, module kwargs: straight to the encoder
            return _encode(value)
        store = _plain_store(value)
        return _encode(value if store is None else store)
    except Exception:  # noqa: BLE001 - keys JSON cannot have, cycles, a failing conversion: content never costs the span
        pass
    try:  # the rare value JSON refused: its structure kept, so the scrubber still sees every key
        return _encode(_json_ready(value, set(), 0))
    except Exception:  # noqa: BLE001
        return _encode(safe_str(value))


JsonText = str | dict[str, Any]
"""A captured value's JSON (`to_json`): the text, or a copy taken in the call that gives the same JSON, encoded on
export. A plain dict rather than a builder of the text: a span waiting for its export keeps one object less
(docs/cpython-gc.md)."""


def json_snapshot(value: Any) -> JsonText:
    """`to_json(value)` of `value` as it is now, for content built on export: a dict or a DSPy Example/Prediction
    of plain scalars and lists of strings (`_plain_values`) is copied, which costs the call less than encoding it
    and gives the same JSON later; anything else is encoded now."""
    values = value if type(value) is dict else _example_store(value)
    copy = _plain_copy(values) if values is not None else None
    return to_json(value) if copy is None else copy


def _plain_copy(values: dict[str, Any]) -> dict[str, Any] | None:
    """`values` copied with its lists when every value is a plain scalar or a list of strings (`_plain_values`), else
    None."""
    if _SCALAR_TYPES.issuperset(map(type, values.values())):  # the common case, checked and copied in C
        return values.copy()
    if not _plain_values(values):
        return None
    return {key: item.copy() if type(item) is list else item for key, item in values.items()}


def json_text(encoded: JsonText) -> str:
    """The JSON text of a `json_snapshot`."""
    return encoded if type(encoded) is str else to_json(encoded)


_MAX_DEPTH = 64


def _json_ready(value: Any, open_containers: set[int], depth: int) -> Any:
    """A copy of `value` that JSON takes: objects as the encoder's default makes them (a dataclass's fields, a
    model's dump), keys JSON cannot have (a tuple, an Enum) as their str(), an object met again inside itself as
    `"<cycle>"`, nesting past `_MAX_DEPTH` as `"<too deep>"`."""
    if type(value) in _SCALARS:
        return writable_int(value) if type(value) is int else value
    if id(value) in open_containers:
        return "<cycle>"
    if depth >= _MAX_DEPTH:
        return "<too deep>"
    container = value
    if not isinstance(value, (dict, Mapping, list, tuple)):
        container = _jsonable(value)
        if not isinstance(container, (dict, list)):
            return container
    open_containers.add(id(value))
    try:
        if isinstance(container, (dict, Mapping)):
            return {key if type(key) in _SCALARS else safe_str(key): _json_ready(item, open_containers, depth + 1)
                    for key, item in container.items()}
        return [_json_ready(item, open_containers, depth + 1) for item in container]
    finally:
        open_containers.discard(id(value))


def safe_str(value: Any) -> str:
    """str(value); a placeholder when the program's object cannot be printed (its `__str__` raises)."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return f"<unprintable {type(value).__name__}>"


_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
_NATIVE = frozenset({dict, list, tuple, str})


def _plain_store(value: Any) -> dict[str, Any] | None:
    """An Example/Prediction's `_store` when it only holds plain scalars and lists of strings (`_plain_values`).

    `Example.toDict()` copies such a store value for value (it only converts objects with `toDict`,
    pydantic models, and the items of lists and dicts), so JSON of the store itself is JSON of `toDict()`,
    which is what the encoder's `default` would have produced, minus the copy and the per-value checks.
    """
    store = _example_store(value)
    return store if store is not None and _plain_values(store) else None


def _plain_values(values: dict[str, Any]) -> bool:
    """Whether every value is a plain scalar or a list of strings: what a copy with its lists copied encodes as the
    values themselves do (a module's keyword arguments with the passages they pass on, most predictions)."""
    for item in values.values():
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list:
            for element in item:
                if type(element) is not str:
                    return False
            continue
        return False
    return True


def _has_dspy_to_dict(cls: type) -> bool:
    """Whether `cls.toDict` is DSPy's `Example.toDict` (Example, Prediction and their subclasses), found by name
    so this module needs no DSPy import."""
    to_dict = getattr(cls, "toDict", None)
    return (getattr(to_dict, "__qualname__", None) == "Example.toDict"
            and getattr(to_dict, "__module__", None) == "dspy.primitives.example")


_example_types: BoundedMemo[type, bool] = BoundedMemo(_has_dspy_to_dict)


def _example_store(value: Any) -> dict[str, Any] | None:
    """The `_store` dict of a DSPy Example/Prediction whose `toDict` is DSPy's own, else None."""
    if not _example_types(type(value)):
        return None
    attributes = getattr(value, "__dict__", None)
    if attributes is None or "toDict" in attributes:
        return None
    store = attributes.get("_store")
    return store if type(store) is dict else None


def request_parameters(lm_kwargs: Mapping[str, Any], call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The allowlisted parameters of `{**lm_kwargs, **call_kwargs}` that are not None, in allowlist order."""
    parameters: dict[str, Any] = {}
    present = _REQUEST_PARAMETER_NAMES.intersection(lm_kwargs)
    if call_kwargs:
        present |= _REQUEST_PARAMETER_NAMES.intersection(call_kwargs)
    for name in _in_allowlist_order(present) if present else ():
        value = call_kwargs[name] if name in call_kwargs else lm_kwargs.get(name)
        if value is not None:
            # A list (`stop`) copied: the attributes may be built on export, after the app changed its own list.
            parameters[name] = tuple(value) if type(value) is list else value
    return parameters


def _allowlist_ordered(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(name for name in _REQUEST_PARAMETERS if name in names)


_REQUEST_PARAMETER_NAMES = frozenset(_REQUEST_PARAMETERS)
_in_allowlist_order: BoundedMemo[frozenset[str], tuple[str, ...]] = BoundedMemo(_allowlist_ordered)
"""The request parameters an LM call's keyword arguments name (a few of the allowlist's 13), in allowlist order."""


RequestKey = tuple[str, "str | None", tuple[tuple[Any, ...], ...], Scrubber, int]
"""(model, provider, one (name, type, value) item per parameter; floats also carry their repr, then the policy's
scrubber and `max_chars`, which scrub and cut them): what an LM's request attributes depend on. Type and repr tell
True from 1 and 0.0 from -0.0, which compare equal but differ in JSON. The policy's two fields rather than the
policy: a frozen dataclass hashes all its fields on every lookup (~180 ns more)."""
_PLAIN = (str, int, bool)


def _request_key(model: str, provider: str | None, parameters: Mapping[str, Any],
                 policy: ContentPolicy) -> RequestKey | None:
    """The memo key of these request attributes, or None when a value is not a plain scalar (`stop` lists)."""
    if type(model) is not str or not (provider is None or type(provider) is str):
        return None
    items: list[tuple[Any, ...]] = []
    for name, value in parameters.items():
        kind = type(value)
        if kind is float:
            items.append((name, kind, repr(value), value))
        elif kind in _PLAIN:
            items.append((name, kind, value))
        else:
            return None
    return model, provider, tuple(items), policy.scrubber, policy.max_chars


def _request_attributes_of(key: RequestKey) -> dict[str, Any]:
    model, provider, items, scrubber, max_chars = key
    return _lm_request_attributes(model, provider, {item[0]: item[-1] for item in items},
                                  ContentPolicy(max_chars=max_chars, scrubber=scrubber))


# A program sends the same model and parameters again and again: their attributes (and JSON) are made once.
_request_attributes: BoundedMemo[RequestKey, dict[str, Any]] = BoundedMemo(_request_attributes_of)


def lm_request_attributes(model: str, provider: str | None, parameters: Mapping[str, Any],
                          policy: ContentPolicy) -> dict[str, Any]:
    """The request attributes of an LM span (a new dict each call: the caller adds to it). They are not content,
    so recorded whatever `capture_content` says, but a model name, a stop sequence or a `rollout_id` may hold a
    credential or run long: scrubbed by shape and cut by `policy` (`ContentPolicy.name`, `.strings`, `.json`)."""
    key = _request_key(model, provider, parameters, policy)
    if key is None:
        return _lm_request_attributes(model, provider, parameters, policy)
    return _request_attributes(key).copy()


def as_embedding_request(attributes: dict[str, Any]) -> None:
    """Make the request attributes of an LM call (`lm_request_attributes`) an embedding request's: its operation, the
    EMBEDDING kind, and `embedding.model_name`, the request model as recorded (scrubbed and cut)."""
    attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.GEN_AI_OPERATION_EMBEDDINGS
    attributes[semconv.SPAN_KIND] = semconv.KIND_EMBEDDING
    attributes[semconv.EMBEDDING_MODEL_NAME] = attributes[semconv.GEN_AI_REQUEST_MODEL]


def drop_output_tokens(attributes: dict[str, Any]) -> None:
    """An embedding's result attributes (`lm_result_attributes`): it has no output, not 0 output tokens."""
    for key in (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.LLM_TOKEN_COUNT_COMPLETION):
        attributes.pop(key, None)


def provider_attributes(provider: str) -> dict[str, Any]:
    """The provider of an LM call (a LiteLLM provider key) in both conventions."""
    return {semconv.GEN_AI_PROVIDER_NAME: gen_ai_provider(provider),
            semconv.LLM_PROVIDER: openinference_provider(provider)}


def _lm_request_attributes(model: str, provider: str | None, parameters: Mapping[str, Any],
                           policy: ContentPolicy) -> dict[str, Any]:
    recorded, redacted = policy.name(model)
    attributes: dict[str, Any] = {
        semconv.SPAN_KIND: semconv.KIND_LLM,
        semconv.GEN_AI_OPERATION_NAME: semconv.GEN_AI_OPERATION_CHAT,
        semconv.GEN_AI_REQUEST_MODEL: recorded,
        semconv.LLM_MODEL_NAME: recorded,
    }
    if provider is not None:
        attributes.update(provider_attributes(provider))
    for name, value in parameters.items():
        key = _GEN_AI_REQUEST.get(name)
        if key is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[key] = value
    if parameters.get("n", 1) != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = parameters["n"]
    stop = _stop_sequences(parameters.get("stop"))
    if stop:
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES], found = policy.strings(
            stop, semconv.GEN_AI_REQUEST_STOP_SEQUENCES)
        redacted = redacted or found
    if parameters:
        attributes[semconv.LLM_INVOCATION_PARAMETERS], found = policy.json(to_json(parameters),
                                                                           semconv.LLM_INVOCATION_PARAMETERS)
        redacted = redacted or found
    if redacted:
        attributes[semconv.SCRUBBED] = True
    return attributes


def _stop_sequences(stop: Any) -> tuple[str, ...] | None:
    """OpenAI's `stop` (one string, or a list of them) as the GenAI convention's string array."""
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, (list, tuple)) and all(isinstance(item, str) for item in stop):
        return tuple(stop)
    return None


def lm_result_attributes(call: LMCall, policy: ContentPolicy) -> dict[str, Any]:
    """Usage, cost and cache facts of a finished call, in both conventions with equal values; the model that
    answered scrubbed and cut as the requested one is (`ContentPolicy.name`)."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: call.input_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: call.output_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: call.cached_tokens,
        semconv.LLM_TOKEN_COUNT_PROMPT: call.input_tokens,
        semconv.LLM_TOKEN_COUNT_COMPLETION: call.output_tokens,
        semconv.LLM_TOKEN_COUNT_TOTAL: call.input_tokens + call.output_tokens,
        semconv.LLM_TOKEN_COUNT_CACHE_READ: call.cached_tokens,
        semconv.CACHE_HIT: call.cache_hit,
    }
    if call.reasoning_tokens:
        attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = call.reasoning_tokens
        attributes[semconv.LLM_TOKEN_COUNT_REASONING] = call.reasoning_tokens
    if call.usage_estimated:
        attributes[semconv.USAGE_ESTIMATED] = True
    if call.cost_usd is None:
        attributes[semconv.COST_UNKNOWN] = True
    else:
        attributes[semconv.GEN_AI_USAGE_COST] = call.cost_usd
        attributes[semconv.LLM_COST_TOTAL] = call.cost_usd
        if call.cost_source:
            attributes[semconv.COST_SOURCE] = call.cost_source
    if call.cache_hit:
        if call.cache_layer:
            attributes[semconv.CACHE_LAYER] = call.cache_layer
        if call.saved_usd is not None:
            attributes[semconv.CACHE_SAVED_USD] = call.saved_usd
        if call.saved_tokens is not None:
            attributes[semconv.CACHE_SAVED_TOKENS] = call.saved_tokens
    put_answer_attributes(attributes, call, policy)
    return attributes


def put_answer_attributes(attributes: dict[str, Any], call: LMCall, policy: ContentPolicy) -> None:
    """Put what a finished call's answer says besides its usage into `attributes`: the model that answered (scrubbed
    and cut as the requested one is, `ContentPolicy.name`), the response id, the finish reasons and the DSPy engine.
    (Filled in place: this runs once per LM call.)"""
    if call.response_model:
        attributes[semconv.GEN_AI_RESPONSE_MODEL], redacted = policy.name(call.response_model)
        if redacted:
            attributes[semconv.SCRUBBED] = True
    if call.response_id:
        attributes[semconv.GEN_AI_RESPONSE_ID] = call.response_id
    if call.finish_reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = call.finish_reasons
    if call.engine:
        attributes[semconv.LM_ENGINE] = call.engine


def rollup_attributes(totals: Spend) -> dict[str, Any]:
    """A module's subtree spend, under lmscope.* keys only (backends would sum gen_ai.usage.* again)."""
    attributes: dict[str, Any] = {
        semconv.LM_CALLS: totals.calls,
        semconv.USAGE_INPUT_TOKENS: totals.input_tokens,
        semconv.USAGE_OUTPUT_TOKENS: totals.output_tokens,
        semconv.USAGE_CACHED_TOKENS: totals.cached_tokens,
        semconv.CACHE_HITS: totals.cache_hits,
    }
    if totals.calls > totals.unpriced_calls:  # no known price at all: no total, never a silent $0
        attributes[semconv.COST_TOTAL_USD] = totals.cost_usd
    if totals.unpriced_calls:
        attributes[semconv.COST_UNKNOWN] = True
    if totals.cache_hits > totals.unpriced_hits:  # likewise for hits whose original price was unknown
        attributes[semconv.CACHE_SAVED_TOTAL_USD] = totals.saved_usd
    return attributes


def _looks_secret(key: str) -> bool:
    """The scrubber's word-part match (`passwd`, `session`, `cookie`, `jwt`, `bearer`, `api_key`, ...), and, wider,
    any key that holds one of `_SECRET_MARKERS` (`headers`, `api_base`, `my_keys`): a settings key is one name, so
    erring wide costs only a readable value."""
    if is_credential_key(key):
        return True
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


is_secret_key: BoundedMemo[str, bool] = BoundedMemo(_looks_secret)
"""is_secret_key(key) -> whether a settings key looks like it holds a secret (its value is recorded as [REDACTED])."""


def _settings_name(key: str) -> tuple[str, bool]:
    return semconv.SETTINGS_PREFIX + key, is_secret_key(key)


settings_name: BoundedMemo[str, tuple[str, bool]] = BoundedMemo(_settings_name)
"""settings_name(key) -> (`lmscope.settings.<key>`, whether its value is a secret to record as [REDACTED])."""


def _sorted_tuple(keys: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(keys))


sorted_overrides: BoundedMemo[frozenset[str], tuple[str, ...]] = BoundedMemo(_sorted_tuple)
"""sorted_overrides(keys) -> the override keys in sorted order (`lmscope.settings.overrides`)."""


def tool_attributes(name: str, description: Any, parameters: Any, policy: ContentPolicy) -> dict[str, Any]:
    """A tool step's name, description and argument schema (`parameters`: the function schema DSPy shows the LM).

    Not content, so recorded whatever `capture_content` says, but scrubbed and cut like it: a docstring may quote a
    key, a default argument may be one (`api_key="sk-..."`), and a docstring may run to pages."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.GEN_AI_OPERATION_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: name, semconv.GEN_AI_TOOL_TYPE: semconv.GEN_AI_TOOL_TYPE_FUNCTION,
        semconv.TOOL_NAME: name,
    }
    redacted = False
    if isinstance(description, str) and description:
        text, redacted = policy.text(description, semconv.TOOL_DESCRIPTION)
        attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = text
        attributes[semconv.TOOL_DESCRIPTION] = text
    if isinstance(parameters, Mapping):
        attributes[semconv.TOOL_PARAMETERS], redacted_parameters = policy.json(to_json(parameters),
                                                                               semconv.TOOL_PARAMETERS)
        redacted = redacted or redacted_parameters
    if redacted:
        attributes[semconv.SCRUBBED] = True
    return attributes


_ID_KEYS = ("id", "pid", "doc_id")
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def _field(document: Mapping[str, Any], names: tuple[str, ...], default: Any) -> Any:
    """The value of the first of `names` the document has."""
    for name in names:
        if name in document:
            return document[name]
    return default


def document_attributes(passages: Any, policy: ContentPolicy) -> dict[str, Any]:
    """`retrieval.documents.N.document.{id,score,content}` for what a retriever returned (text only when outputs are
    captured, scrubbed and cut like any content).

    An id is not content, but it may hold a credential (`https://...?token=...`, `postgres://user:pw@...`) or be a
    document's text: it is scrubbed by shape and cut either way, and with outputs not captured only an id of at most
    `MAX_HIDDEN_ID_CHARS` characters is recorded (a longer one is content-like: left out)."""
    if not isinstance(passages, (list, tuple)):
        return {}
    attributes: dict[str, Any] = {semconv.RETRIEVAL_DOCUMENT_COUNT: len(passages)}  # past the cut too
    for index, passage in enumerate(passages[:_MAX_DOCUMENTS]):
        prefix = f"{semconv.RETRIEVAL_DOCUMENTS}.{index}."
        if isinstance(passage, Mapping):
            # DSPy's dotdicts (`long_text`, `pid`), or a LangChain-style Document (`page_content`, its id and score
            # in `metadata`, as `DatabricksRM(use_with_databricks_agent_framework=True)` returns them)
            metadata = passage.get("metadata")
            metadata = metadata if isinstance(metadata, Mapping) else _NO_METADATA
            doc_id = _field(passage, _ID_KEYS, _field(metadata, _ID_KEYS, index))
            score = _field(passage, ("score",), metadata.get("score"))
            content = _field(passage, ("long_text", "text", "content", "page_content"), None)
        else:
            doc_id, score, content = index, None, passage
        text_id = doc_id if type(doc_id) is str else safe_str(doc_id)
        if policy.capture_outputs or len(text_id) <= MAX_HIDDEN_ID_CHARS:
            key = prefix + semconv.DOCUMENT_ID
            attributes[key], redacted = policy.text(text_id, key)
            if redacted:
                attributes[semconv.SCRUBBED] = True
        if isinstance(score, numbers.Real) and not isinstance(score, bool):  # numpy's float32 too, not a flag
            attributes[prefix + semconv.DOCUMENT_SCORE] = float(score)
        if policy.capture_outputs and content is not None:
            key = prefix + semconv.DOCUMENT_CONTENT
            attributes[key], redacted = policy.text(safe_str(content), key)
            if redacted:
                attributes[semconv.SCRUBBED] = True
    return attributes
