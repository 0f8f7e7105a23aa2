"""Token counts from a provider's usage, in either of OpenAI's shapes, onto an `LMCall`; and the other fields of an
answer read the same careful way: a value of the type it should have, else nothing (a test's `MagicMock` response
is any type it is asked for).

Chat Completions name them `prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`,
`completion_tokens_details.reasoning_tokens`; the Responses API `input_tokens`, `output_tokens`,
`input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`. LiteLLM hands them as its objects,
DSPy's history as plain dicts: read by duck typing, no library import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..telemetry._lm_call import LMCall


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def non_empty_str(value: Any) -> str | None:
    """A field of an answer that names something (its model, its id): a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def get(value: Any, name: str) -> Any:
    """`value[name]` or `value.name`: a provider's usage comes as LiteLLM's objects or as plain dicts."""
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def usage_into(call: LMCall, usage: Any) -> None:
    """Copy a LiteLLM usage object's counts onto `call`: Chat Completions' names, else the Responses API's. A plain
    dict (DSPy's own usage) is read with its own `get`, in C."""
    read: Callable[[str], Any] = usage.get if type(usage) is dict else functools.partial(get, usage)
    chat = read("prompt_tokens") is not None or read("input_tokens") is None
    inputs, outputs = ("prompt_tokens", "completion_tokens") if chat else ("input_tokens", "output_tokens")
    call.input_tokens = _count(read(inputs))
    call.output_tokens = _count(read(outputs))
    call.cached_tokens = _count(get(read(inputs + "_details"), "cached_tokens"))
    call.reasoning_tokens = _count(get(read(outputs + "_details"), "reasoning_tokens"))
