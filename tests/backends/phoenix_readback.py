"""Reading spans back from a Phoenix server through its REST API, and comparing an LM call's messages.

GET /v1/projects/{project}/spans (Phoenix 20.x; the project by name) returns stored spans with flat, dotted
attribute keys: what Phoenix keeps is what the UI shows, read without Phoenix's client library (which lives in
its own venv).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from lmscope.telemetry import _semconv as semconv

PAGE = 1000  # the largest page the endpoint allows


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def project_spans(base_url: str, project: str) -> list[dict[str, Any]]:
    """Every span Phoenix stored under `project`, oldest first; [] for a project that does not exist."""
    spans: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": PAGE, "order": "asc", **({"cursor": cursor} if cursor else {})}
        url = f"{base_url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?{urllib.parse.urlencode(query)}"
        try:
            page = _get(url)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        spans.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return spans


def project_sessions(base_url: str, project: str) -> list[dict[str, Any]]:
    return list(_get(f"{base_url}/v1/projects/{urllib.parse.quote(project, safe='')}/sessions")["data"])


_MESSAGE_LISTS = ("llm.input_messages", "llm.output_messages")


def indexed_messages(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`{prefix}.{i}.message.{field}` keys as a list of {field: value} per message, in index order.

    OpenInference's flattened message lists (`llm.input_messages.0.message.role`, ...); Phoenix returns them
    flat too, or as a list of {"message": {...}} under `prefix` (both shapes are read).
    """
    nested = attributes.get(prefix)
    if isinstance(nested, list):
        return [dict(item.get("message", {})) for item in nested]
    messages: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, rest = key[len(prefix) + 1:].partition(".")
        if index.isdigit() and rest.startswith("message."):
            messages.setdefault(int(index), {})[rest.removeprefix("message.")] = value
    return [messages[index] for index in sorted(messages)]


def assert_messages_stored(stored: Mapping[str, Any], recorded: Mapping[str, Any]) -> None:
    """An LM call's prompt and answer in Phoenix are the ones lmscope recorded, readable as messages: the
    flattened `llm.input_messages.*` hold the roles and contents of `input.value`, and Phoenix holds the same lists
    (what its chat view draws)."""
    assert stored[semconv.INPUT_VALUE] == recorded[semconv.INPUT_VALUE]
    sent = json.loads(recorded[semconv.INPUT_VALUE])
    assert [{"role": m["role"], "content": m["content"]} for m in sent] == indexed_messages(
        recorded, "llm.input_messages")
    assert {m["role"] for m in sent} <= {"system", "user", "assistant", "tool", "developer"}
    answers = indexed_messages(recorded, "llm.output_messages")
    assert answers and {m["role"] for m in answers} == {"assistant"} and all(m.get("content") for m in answers)
    for prefix in _MESSAGE_LISTS:
        assert indexed_messages(stored, prefix) == indexed_messages(recorded, prefix), prefix
