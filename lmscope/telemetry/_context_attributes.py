"""`lmscope.context(...)`: request-scoped attributes (session, user, tags, metadata) on every span.

The values live in the OpenTelemetry context, so they follow asyncio tasks and, because the DSPy
instrumentation re-attaches the launching context in worker threads, `batch`/`Parallel`/`Evaluate` too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context

from . import _semconv as semconv

if TYPE_CHECKING:
    from ._content import ContentPolicy

_KEY = otel_context.create_key("lmscope-context-attributes")


def _check(name: str, value: Any, kind: type | tuple[type, ...], allowed: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"lmscope.context: {name} must be {allowed}, got {type(value).__name__} {value!r}")


@contextmanager
def context(*, session_id: str | None = None, user_id: str | None = None, tags: Sequence[str] | None = None,
            metadata: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Put `session.id`, `user.id`, `tag.tags` and `metadata` on every span started inside the block.

    Nested blocks override the session and user, add tags, and merge metadata keys.
    """
    _check("session_id", session_id, str, "a string")
    _check("user_id", user_id, str, "a string")
    _check("tags", tags, (list, tuple), "a list of strings")
    _check("metadata", metadata, Mapping, "a mapping")
    if tags is not None and not all(isinstance(tag, str) for tag in tags):
        raise TypeError(f"lmscope.context: tags must be a list of strings, got {tags!r}")
    enclosing = otel_context.get_value(_KEY)
    outer: dict[str, Any] = dict(enclosing) if isinstance(enclosing, _Scope) else {}
    if session_id is not None:
        outer["session_id"] = session_id
    if user_id is not None:
        outer["user_id"] = user_id
    if tags:
        outer["tags"] = tuple(dict.fromkeys((*outer.get("tags", ()), *tags)))
    if metadata:
        outer["metadata"] = {**outer.get("metadata", {}), **metadata}
    attributes = _as_span_attributes(outer)
    token = otel_context.attach(otel_context.set_value(_KEY, _Scope(outer, attributes)))
    try:
        yield
    finally:
        otel_context.detach(token)


class _Scope(dict[str, Any]):
    """The raw values (for nesting) plus the span attributes computed once per block, not per span."""

    def __init__(self, values: dict[str, Any], attributes: dict[str, Any]) -> None:
        super().__init__(values)
        self.attributes = attributes
        self._recorded: tuple[ContentPolicy, dict[str, Any]] | None = None

    def recorded(self, policy: ContentPolicy) -> dict[str, Any]:
        """The attributes with `metadata` scrubbed and cut by `policy`: once per block, not per span."""
        cached = self._recorded  # one read: another thread may set it meanwhile, to the same value
        if cached is not None and cached[0] is policy:
            return cached[1]
        attributes = dict(self.attributes)
        metadata = attributes.get(semconv.METADATA)
        if metadata is not None:
            attributes[semconv.METADATA], redacted = policy.json(metadata, semconv.METADATA)
            if redacted:
                attributes[semconv.SCRUBBED] = True
        self._recorded = (policy, attributes)
        return attributes


def _as_span_attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if "session_id" in values:
        attributes[semconv.SESSION_ID] = values["session_id"]
    if "user_id" in values:
        attributes[semconv.USER_ID] = values["user_id"]
    if values.get("tags"):
        attributes[semconv.TAG_TAGS] = values["tags"]
    if values.get("metadata"):
        attributes[semconv.METADATA] = json.dumps(values["metadata"], default=str, sort_keys=True)
    return attributes


def context_attributes(ctx: Mapping[Any, Any] | None = None,
                       policy: ContentPolicy | None = None) -> Mapping[str, Any] | None:
    """The attributes of the innermost `lmscope.context` block in `ctx` (default: current), or None; with a
    `policy`, as that policy records them (`metadata` scrubbed and cut)."""
    scope = (ctx if ctx is not None else otel_context.get_current()).get(_KEY)
    if not isinstance(scope, _Scope):
        return None
    return scope.attributes if policy is None else scope.recorded(policy)
