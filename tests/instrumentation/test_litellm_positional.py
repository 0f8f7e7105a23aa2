"""Calls that pass LiteLLM's leading arguments by position: the span reads them under LiteLLM's own names.

lmscope sees a call's arguments as LiteLLM declares them (`_TARGETS` in instrumentation/litellm/__init__.py): a name
out of LiteLLM's order would put the prompt where the model belongs (`text_completion unknown`)."""

from __future__ import annotations

import asyncio
import inspect
import json

import litellm
import pytest

from lmscope.instrumentation.litellm import _TARGETS
from lmscope.telemetry import _semconv as semconv

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_MESSAGES = [{"role": "user", "content": "Hi"}]
_CALLS = {  # each entry point, called as LiteLLM's signature allows: (its positional arguments, span name, input)
    "completion": (("openai/gpt-4o-mini", _MESSAGES), "chat gpt-4o-mini", _MESSAGES),
    "text_completion": (("Say hi", "openai/gpt-4o-mini"), "text_completion gpt-4o-mini", "Say hi"),
    "responses": (("Hello", "openai/gpt-4o-mini"), "chat gpt-4o-mini", [{"role": "user", "content": "Hello"}]),
    "embedding": (("openai/text-embedding-3-small", ["Paris"]), "embeddings text-embedding-3-small", ["Paris"]),
}


def _positional_names(function):
    return tuple(parameter.name for parameter in inspect.signature(function).parameters.values()
                 if parameter.kind in _POSITIONAL)


@pytest.mark.parametrize(("name", "names"), [(name, names) for name, _op, names, _async in _TARGETS],
                         ids=[target[0] for target in _TARGETS])
def test_the_positional_names_are_litellms(name, names):
    declared = _positional_names(getattr(litellm, name))
    if not declared:  # `atext_completion`, `aembedding`: (*args, **kwargs), handed on to the sync function
        assert name.startswith("a")
        declared = _positional_names(getattr(litellm, name[1:]))
    # Every entry point takes its model and its input first: both must be read where LiteLLM reads them.
    assert names == declared[:2] and "model" in names


@pytest.mark.parametrize("name", [target[0] for target in _TARGETS])
def test_a_call_by_position_is_read_as_by_keyword(litellm_spans, lm_server, name):
    args, span_name, sent = _CALLS[name if name in _CALLS else name[1:]]  # an async one as its sync sibling
    result = getattr(litellm, name)(*args, api_base=lm_server.base_url, api_key="sk-anything")
    if inspect.iscoroutine(result):
        asyncio.run(result)

    (span,) = litellm_spans()
    assert span.name == span_name
    assert json.loads(span.attributes[semconv.INPUT_VALUE]) == sent
