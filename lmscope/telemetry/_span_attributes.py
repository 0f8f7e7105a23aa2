"""Store the attributes an instrumentor built on an SDK span, without re-validating every value.

`Span.set_attributes` runs each value through the SDK's cleaning (`_clean_attribute_value`: type checks,
sequence-to-tuple copies, truncation) and stores the items one by one under two locks: about 0.3 µs per
attribute in a tight loop and ~0.5 µs inside a DSPy call, which made the SDK's attribute storage the
largest single part of lmscope's overhead (~70 µs of a 3-step program call with ~150 attributes).

Our builders only produce values the cleaning returns unchanged (str, bool, int, float, and tuples of one
of those). When the span and its limits are such that `set_attributes` would store exactly the given
items, in the given order, dropping none, they go straight into the span's attribute dict, under the
span's own lock (the one `set_attributes` and `end` hold). Anything else (another Span class, an ended
span, a count or length limit in reach, a key already set, a value needing cleaning) takes
`span.set_attributes`, unchanged. The result is the same either way; tests/telemetry/test_span_attributes.py
checks that against the SDK.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.attributes import BoundedAttributes

from ._internal_errors import report_internal_error

try:
    from opentelemetry.sdk.trace import _Span as _SdkSpan  # what the SDK's Tracer.start_span creates
except ImportError:  # pragma: no cover - an SDK without it: always the public path
    _SdkSpan = None

_SCALARS = frozenset({str, bool, int, float})
_enabled = _SdkSpan is not None


def store_attributes(span: Any, attributes: dict[str, Any]) -> None:
    """`span.set_attributes(attributes)`, with the same result, minus the per-value work where it is redundant.

    `attributes` must have non-empty str keys (lmscope's own names); values may be anything.
    """
    global _enabled
    if _enabled and type(span) is _SdkSpan:
        try:
            with span._lock:
                if span._end_time is None and update_plain(span._attributes, attributes):
                    return
        except AttributeError as exc:  # an SDK whose Span keeps its attributes differently
            _enabled = False
            report_internal_error("span attribute fast path (using set_attributes)", exc)
    # Everything the fast path does not take: ended spans (the SDK warns and drops), a count or value-length
    # limit in reach (it truncates or drops), a key set again (it moves to the end), values it must clean.
    span.set_attributes(attributes)


def update_plain(bounded: Any, attributes: dict[str, Any]) -> bool:
    """`bounded._set_items(attributes)` when that would store the items as they are, in order, dropping none: then
    straight into its dict. False (and nothing done) otherwise. The caller keeps the mapping from changing meanwhile.
    """
    if type(bounded) is not BoundedAttributes or bounded.max_value_len is not None or bounded._immutable:
        return False
    if not (_SCALARS.issuperset(map(type, attributes.values())) or _plain_tuples(attributes)):
        return False
    stored, limit = bounded._dict, bounded.maxlen
    fits = limit is None or len(stored) + len(attributes) <= limit
    if fits and (not stored or stored.keys().isdisjoint(attributes)):
        stored.update(attributes)
        return True
    return False


def _plain_tuples(attributes: dict[str, Any]) -> bool:
    """Only scalars and non-empty tuples of one scalar type: what the SDK stores as it is, in any version."""
    values = attributes.values()
    if not _SCALARS_AND_TUPLE.issuperset(map(type, values)):
        return False
    for value in filter(_is_tuple, values):  # the scan in C: most values are scalars
        kind = type(value[0]) if value else None
        if kind not in _SCALARS or not all(type(item) is kind for item in value):
            return False
    return True


_SCALARS_AND_TUPLE = _SCALARS | {tuple}
_is_tuple = tuple.__instancecheck__
