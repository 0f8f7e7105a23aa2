"""`lmscope.context(...)`: request-scoped attributes (session, user, tags, metadata) on every span.

The values live in the OpenTelemetry context, so they follow asyncio tasks and, because the DSPy
instrumentation re-attaches the launching context in worker threads, `batch`/`Parallel`/`Evaluate` too.

OpenInference interop, both ways. OpenInference's `using_session`, `using_user`, `using_metadata`, `using_tags` and
`using_attributes` store their values in the OpenTelemetry context under the attribute names themselves
(`session.id`, `user.id`, `metadata` as a JSON string, `tag.tags` as a list), and its instrumentors copy them onto
their spans (`get_attributes_from_context()`). So:
- `lmscope.context` writes its block's values under those keys too, in those shapes, as lmscope records them
  (scrubbed and cut by the instrumented `ContentPolicy`, `use_policy`): OpenInference's spans, and anything else that
  reads them, carry the same values as lmscope's, never a raw `api_key` from `metadata`;
- lmscope's spans read those keys: a value an OpenInference block set is on lmscope's spans as well.
The keys are the OpenInference semantic conventions (a dependency of lmscope); openinference-instrumentation
itself is never imported. The innermost block wins, whichever library opened it: an lmscope block extends what
encloses it as nested lmscope blocks do (session and user replaced, tags added, metadata keys merged); an
OpenInference block replaces the values it sets, as OpenInference does. Both kinds of span see the same values.

Cost: a block's attributes are computed once, at entry. A span reads `_KEY` and compares the four OpenInference
keys with what its block wrote (equal unless an OpenInference block opened inside it); with no block at all, one
`_KEY` lookup and one disjointness test of the context's keys. Values an OpenInference block set are turned into
attributes once per distinct context state (a one-entry cache), not once per span.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import context as otel_context

from . import _semconv as semconv
from ._internal_errors import report_internal_error
from ._json import writable_int

if TYPE_CHECKING:
    from ._content import ContentPolicy

_KEY = otel_context.create_key("lmscope-context-attributes")
_FOREIGN_KEYS: tuple[str, str, str, str] = (semconv.SESSION_ID, semconv.USER_ID, semconv.METADATA, semconv.TAG_TAGS)
"""OpenInference's context keys for the values `lmscope.context` sets, in `_Scope.written` order."""
_FOREIGN_KEY_SET = frozenset(_FOREIGN_KEYS)
_SESSION_ID, _USER_ID, _METADATA, _TAG_TAGS = _FOREIGN_KEYS
_NOTHING_WRITTEN: tuple[object, object, object, object] = (None, None, None, None)
_last_merged: tuple[object, tuple[object, ...], _Scope] | None = None
"""(lmscope scope or None, OpenInference values, the scope they make together): the last merge, reused while the
context stays the same (every span of one block)."""


logger = logging.getLogger("lmscope")
_warned: set[str] = set()
"""Kinds of bad value already warned about: one line per kind and process, however many blocks repeat it."""
_CIRCULAR = "[circular reference]"


def _warn(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        logger.warning("lmscope.context: %s", message)


def _text(value: object) -> str:
    """str(value), else its repr, else a placeholder: an object whose __str__ raises must not reach the app."""
    for convert in (str, repr):
        try:
            text = convert(value)
        except Exception:  # noqa: BLE001 - the app's object, the app's bug: try the next way to show it
            continue
        if isinstance(text, str):
            return text
    return f"<unprintable {type(value).__name__}>"


def _identifier(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    _warn(f"{name}-type", f"{name} must be a string, got {type(value).__name__}; recorded as its text")
    return _text(value)


def _tags(tags: object) -> tuple[str, ...]:
    if isinstance(tags, str):
        _warn("tags-string", "tags must be a list of strings, got one string; recorded as a one-tag list")
        return (tags,)
    items: tuple[object, ...] = (tags,)
    if not isinstance(tags, (bytes, bytearray, Mapping)):  # one value, not a collection of tags
        # Not iterable, or its iterator raised: one tag, its text.
        with contextlib.suppress(Exception):
            items = tuple(cast("Iterable[object]", tags))
    if not isinstance(tags, (list, tuple)):
        _warn("tags-type", f"tags must be a list of strings, got {type(tags).__name__}; recorded as a list of "
                           "its items' text")
    if not all(isinstance(tag, str) for tag in items):
        _warn("tags-item", "tags must be strings; a tag of another type is recorded as its text")
    return tuple(_text(tag) for tag in items)


def _metadata(metadata: object) -> dict[str, Any]:
    """`metadata` as a dict JSON can always encode (sorted, keys str): anything else is wrapped, repaired, warned."""
    if not isinstance(metadata, Mapping):
        _warn("metadata-type", f"metadata must be a mapping, got {type(metadata).__name__}; recorded as "
                               '{"value": ...}')
        metadata = {"value": metadata}
    problems: set[str] = set()
    encodable = _jsonable(metadata, set(), problems)
    for problem in sorted(problems):
        _warn(f"metadata-{problem}", _METADATA_PROBLEMS[problem])
    return cast(dict[str, Any], encodable)


_METADATA_PROBLEMS = {
    "key": "metadata keys must be strings, numbers, booleans or None; another key is recorded as its text",
    "cycle": f"metadata refers to itself; the repeated reference is recorded as {_CIRCULAR!r}",
    "unreadable": "metadata holds a mapping or list that cannot be read; it is recorded as its text",
}


def _jsonable(value: object, path: set[int], problems: set[str]) -> object:
    """A copy of `value` json.dumps(sort_keys=True) takes: str keys (JSON's own spelling for numbers, booleans and
    None), containers on the current path replaced by a marker, other objects kept for `default=str` (as before),
    except that objects whose str() raises become their repr."""
    if value is None or isinstance(value, (str, float, bool)):
        return value
    if isinstance(value, int):
        return writable_int(value)
    if not isinstance(value, (Mapping, list, tuple)):
        return _text(value)
    if id(value) in path:
        problems.add("cycle")
        return _CIRCULAR
    path.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {_key(key, problems): _jsonable(item, path, problems) for key, item in value.items()}
        return [_jsonable(item, path, problems) for item in value]
    except Exception:  # noqa: BLE001 - a Mapping whose items() raises, say
        problems.add("unreadable")
        return _text(value)
    finally:
        path.discard(id(value))


def _key(key: object, problems: set[str]) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)  # what json.dumps itself would make of the key: 1 -> "1", True -> "true"
    problems.add("key")
    return _text(key)


@contextmanager
def context(*, session_id: str | None = None, user_id: str | None = None, tags: Sequence[str] | None = None,
            metadata: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Put `session.id`, `user.id`, `tag.tags` and `metadata` on every span started inside the block.

    Nested blocks override the session and user, add tags, and merge metadata keys. A value that cannot become an
    attribute is never an error in the app: ids become their text, tags a list of text, metadata a JSON object
    (a non-mapping one wrapped as {"value": ...}, cycles broken); one warning per kind of problem.
    """
    try:
        token = otel_context.attach(_entered(session_id, user_id, tags, metadata))
    except Exception as exc:  # noqa: BLE001 - tracing must not break the app's block
        report_internal_error("lmscope.context (the block runs without its attributes)", exc)
        token = None
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)


def use_policy(policy: ContentPolicy) -> None:
    """Scrub and cut what `lmscope.context` blocks write under OpenInference's context keys with `policy` (the
    instrumentors' own, set when they are instrumented); until then, lmscope's default policy."""
    _policies.append(policy)


def forget_policy(policy: ContentPolicy) -> None:
    """Its instrumentor was uninstrumented: the policy of the latest instrumentor still instrumented is used (both of
    `lmscope.instrument()`'s share one), else lmscope's default."""
    for index in range(len(_policies) - 1, -1, -1):
        if _policies[index] is policy:
            del _policies[index]
            return


def _writing_policy() -> ContentPolicy:
    global _default
    try:
        return _policies[-1]
    except IndexError:
        pass
    if _default is None:
        from ._content import ContentPolicy

        _default = ContentPolicy()
    return _default


_policies: list[ContentPolicy] = []
"""The policies of the instrumentors instrumented now, oldest first (appended and removed under the GIL)."""
_default: ContentPolicy | None = None


def _entered(session_id: object, user_id: object, tags: object, metadata: object) -> otel_context.Context:
    """The current context with the block's scope under `_KEY` and its values under OpenInference's keys, as lmscope
    records them (scrubbed and cut): an OpenInference instrumentor copies those onto its spans as they are."""
    ctx = otel_context.get_current()
    enclosing = _effective_scope(ctx)
    scope = _scope(dict(enclosing) if enclosing is not None else {}, session_id, user_id, tags, metadata)
    attributes = scope.recorded(_writing_policy())
    tag_list = attributes.get(semconv.TAG_TAGS)
    for key, value in ((semconv.SESSION_ID, attributes.get(semconv.SESSION_ID)),
                       (semconv.USER_ID, attributes.get(semconv.USER_ID)),
                       (semconv.METADATA, attributes.get(semconv.METADATA)),
                       (semconv.TAG_TAGS, list(tag_list) if tag_list else None)):
        if value is not None:
            ctx = otel_context.set_value(key, value, ctx)
    scope.written = tuple(ctx.get(key) for key in _FOREIGN_KEYS)
    return otel_context.set_value(_KEY, scope, ctx)


def _scope(outer: dict[str, Any], session_id: object, user_id: object, tags: object, metadata: object) -> _Scope:
    if session_id is not None:
        outer["session_id"] = _identifier("session_id", session_id)
    if user_id is not None:
        outer["user_id"] = _identifier("user_id", user_id)
    if tags is not None:
        outer["tags"] = tuple(dict.fromkeys((*outer.get("tags", ()), *_tags(tags))))
    if metadata is not None:
        outer["metadata"] = {**outer.get("metadata", {}), **_metadata(metadata)}
    return _Scope(outer, _as_span_attributes(outer))


class _Scope(dict[str, Any]):
    """The raw values (for nesting) plus the span attributes computed once per block, not per span."""

    def __init__(self, values: dict[str, Any], attributes: dict[str, Any]) -> None:
        super().__init__(values)
        self.attributes = attributes
        self.written: tuple[object, ...] = _NOTHING_WRITTEN
        """What the block left under OpenInference's context keys: a span whose context still holds exactly
        these saw no OpenInference block open inside this one."""
        self._recorded: tuple[ContentPolicy, dict[str, Any]] | None = None

    def recorded(self, policy: ContentPolicy) -> dict[str, Any]:
        """The attributes as `policy` records them, once per block, not per span: `metadata` scrubbed (by key and
        shape) and cut, session and user ids and each tag scrubbed by shape, every one cut (`tag.tags` as a whole).
        None of them is content: recorded whatever `capture_content` says, so never with a secret or at any length."""
        cached = self._recorded  # one read: another thread may set it meanwhile, to the same value
        if cached is not None and cached[0] is policy:
            return cached[1]
        attributes = dict(self.attributes)
        redacted = False
        for key in (semconv.SESSION_ID, semconv.USER_ID):
            identifier = attributes.get(key)
            if identifier is not None:
                attributes[key], found = policy.text(identifier, key)
                redacted = redacted or found
        tags = attributes.get(semconv.TAG_TAGS)
        if tags:
            attributes[semconv.TAG_TAGS], found = policy.strings(tags, semconv.TAG_TAGS)
            redacted = redacted or found
        metadata = attributes.get(semconv.METADATA)
        if metadata is not None:
            attributes[semconv.METADATA], found = policy.json(metadata, semconv.METADATA)
            redacted = redacted or found
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
        attributes[semconv.METADATA] = json.dumps(values["metadata"], default=_text, sort_keys=True)
    return attributes


def context_attributes(ctx: Mapping[Any, Any] | None = None,
                       policy: ContentPolicy | None = None) -> Mapping[str, Any] | None:
    """The context attributes in force in `ctx` (default: current), or None: the innermost `lmscope.context`
    block's, with what OpenInference blocks set (inside it, or alone); with a `policy`, as that policy records them
    (`metadata` scrubbed and cut)."""
    if ctx is None:
        ctx = otel_context.get_current()
    scope: _Scope | None = ctx.get(_KEY)  # type: ignore[assignment]  # only lmscope.context writes _KEY
    if scope is None:
        if ctx.keys().isdisjoint(_FOREIGN_KEY_SET):  # the common case: no block at all
            return None
    elif (ctx.get(_SESSION_ID), ctx.get(_USER_ID), ctx.get(_METADATA), ctx.get(_TAG_TAGS)) == scope.written:
        return scope.attributes if policy is None else scope.recorded(policy)  # an lmscope block, nothing inside
    scope = _effective_scope(ctx)
    if scope is None:
        return None
    return scope.attributes if policy is None else scope.recorded(policy)


def _effective_scope(ctx: Mapping[Any, Any]) -> _Scope | None:
    """The values in force in `ctx`: the innermost lmscope block's, updated by OpenInference blocks inside it."""
    global _last_merged
    scope = ctx.get(_KEY)
    if not isinstance(scope, _Scope):
        scope = None
        if ctx.keys().isdisjoint(_FOREIGN_KEY_SET):
            return None
    found = (ctx.get(semconv.SESSION_ID), ctx.get(semconv.USER_ID), ctx.get(semconv.METADATA),
             ctx.get(semconv.TAG_TAGS))
    written = scope.written if scope is not None else _NOTHING_WRITTEN
    if found == written:
        return scope
    last = _last_merged  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is scope and last[1] == found:
        return last[2]
    merged = _merged(scope, found, written)
    _last_merged = (scope, found, merged)
    return merged


def _merged(scope: _Scope | None, found: tuple[object, ...], written: tuple[object, ...]) -> _Scope:
    """`scope`'s values with those an OpenInference block set since replacing them (it replaces what it sets)."""
    values: dict[str, Any] = dict(scope) if scope is not None else {}
    session_id, user_id, metadata, tags = (value if value != before else _KEEP
                                           for value, before in zip(found, written))
    for name, value in (("session_id", session_id), ("user_id", user_id)):
        if value is None:
            values.pop(name, None)
        elif value is not _KEEP:
            values[name] = _identifier(name, value)
    if tags is None:
        values.pop("tags", None)
    elif tags is not _KEEP:
        values["tags"] = _tags(tags)
    if metadata is None:
        values.pop("metadata", None)
    elif metadata is not _KEEP:
        values["metadata"] = _metadata(_decoded(metadata))
    return _Scope(values, _as_span_attributes(values))


_KEEP = object()
"""An OpenInference value still as the lmscope block wrote it."""


def _decoded(metadata: object) -> object:
    """OpenInference keeps metadata as a JSON string; its object, or the text itself when it is not JSON."""
    if not isinstance(metadata, str):
        return metadata
    try:
        return json.loads(metadata)
    except ValueError:
        return metadata
