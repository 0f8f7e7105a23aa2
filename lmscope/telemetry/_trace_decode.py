"""One line of an OTLP/JSON trace file into span records, checking every field it reads.

The file is untrusted: any value may have any JSON type, numbers may be huge or NaN, nesting may be deep.
A span without a usable trace or span id is skipped; any other bad field is read as absent (or its default)
and the span kept. Either way the span's problems become one line in `ReadProblems`, and nothing here raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from ._read_problems import ReadProblems
from ._trace_records import EventRecord, SpanRecord, numbers_checked

# OTLP enum values by number; the protobuf JSON mapping also allows the enum's name.
_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")
_MAX_NANOS = 2**64 - 1  # fixed64 in OTLP; also keeps datetime() in range when a page prints the time
_INT64 = range(-(2**63), 2**64)  # intValue is int64; a uint64 written by some producers is accepted too
_PARENT_IS_REMOTE = 0x300
_MAX_VALUE_DEPTH = 32
"""Arrays and key-value lists nested deeper than this are dropped: no real attribute nests so deep."""
_MAX_DIGITS = 40
"""JSON integers longer than this are read as infinite (and then rejected where an integer is expected),
so a 5,000-digit number neither raises int()'s digit limit nor costs a quadratic conversion."""


def decode_line(text: str, line: int, problems: ReadProblems, *, lossy: bool = False) -> list[SpanRecord]:
    """The spans of one line; a line that is not JSON is counted as unreadable. `lossy`: `text` was not valid
    UTF-8 and its bad bytes were replaced."""
    try:
        request = json.loads(text, parse_int=_parse_int)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the JSON parser's limit
        problems.unreadable(line)
        return []
    if lossy:
        problems.add(line, "not valid UTF-8; undecodable bytes read as U+FFFD")
    return decode_request(request, line, problems)


def decode_request(request: Any, line: int, problems: ReadProblems) -> list[SpanRecord]:
    """The spans of one decoded `ExportTraceServiceRequest`."""
    resource_spans = request.get("resourceSpans") if isinstance(request, dict) else None
    if not isinstance(resource_spans, list):
        problems.add(line, "not an OTLP/JSON trace request (no resourceSpans list); skipped")
        return []
    records = []
    for number, (span, resource) in enumerate(_spans(resource_spans, line, problems), start=1):
        issues: list[str] = []
        try:
            record = _record(span, resource, line, issues)
        except Exception as exc:  # noqa: BLE001 - a check missed above must cost one span, not the file
            record, issues = None, [f"could not be read ({type(exc).__name__}); skipped"]
        if issues:
            more = len(issues) - 1
            more_text = f" (and {more} more problem{'' if more == 1 else 's'})" if more else ""
            problems.add(line, f"span {number} {issues[0]}{more_text}")
        if record is not None:
            records.append(record)
    problems.spans_read += len(records)
    return records


def _parse_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _MAX_DIGITS else math.copysign(math.inf, -1 if digits[0] == "-" else 1)


def _spans(resource_spans: list[Any], line: int, problems: ReadProblems) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Every span object of the request with its resource's attributes; malformed groups are reported."""
    for group in resource_spans:
        if not isinstance(group, dict):
            problems.add(line, f"a resourceSpans entry is {_kind(group)}, not an object; skipped")
            continue
        resource_issues: list[str] = []
        resource_object = group.get("resource")
        resource = _attributes(resource_object.get("attributes") if isinstance(resource_object, dict) else None,
                               resource_issues)
        if resource_issues:
            problems.add(line, f"resource {resource_issues[0]}")
        for scope in _list(group.get("scopeSpans")):
            spans = scope.get("spans") if isinstance(scope, dict) else None
            if not isinstance(spans, list):
                problems.add(line, "a scopeSpans entry has no spans list; skipped")
                continue
            for span in spans:
                yield span, resource


def _record(span: Any, resource: dict[str, Any], line: int, issues: list[str]) -> SpanRecord | None:
    if not isinstance(span, dict):
        issues.append(f"is {_kind(span)}, not an object; skipped")
        return None
    trace_id = _hex_id(span, "traceId", 32, issues)
    span_id = _hex_id(span, "spanId", 16, issues)
    if trace_id is None or span_id is None:
        return None
    parent = span.get("parentSpanId")
    parent_id = None if parent in (None, "") else _hex_id(span, "parentSpanId", 16, issues,
                                                          consequence="drawn as a root")
    status = span.get("status")
    if not isinstance(status, dict):
        if status is not None:
            issues.append(f"has a status that is {_kind(status)}")
        status = {}
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_id,
        name=_text(span, "name", issues),
        kind=_enum(span.get("kind"), _KINDS, "SPAN_KIND_", "kind", issues),
        start_ns=_nanos(span, "startTimeUnixNano", issues),
        end_ns=_nanos(span, "endTimeUnixNano", issues),
        attributes=numbers_checked(_attributes(span.get("attributes"), issues)),
        status_code=_enum(status.get("code"), _STATUS_CODES, "STATUS_CODE_", "status code", issues),
        status_message=_text(status, "message", issues),
        events=tuple(_events(span.get("events"), issues)),
        resource=resource,
        remote_parent=_remote_parent(span.get("flags")),
        line=line,
    )


def _remote_parent(flags: Any) -> bool:
    # OTLP SpanFlags: bit 8 says bit 9 is known, bit 9 says the parent is remote.
    return isinstance(flags, int) and flags & _PARENT_IS_REMOTE == _PARENT_IS_REMOTE


def _events(encoded: Any, issues: list[str]) -> Iterator[EventRecord]:
    for event in _list(encoded, "events", issues):
        if not isinstance(event, dict):
            issues.append(f"has an event that is {_kind(event)}")
            continue
        yield EventRecord(_text(event, "name", issues), _nanos(event, "timeUnixNano", issues),
                          _attributes(event.get("attributes"), issues))


def _hex_id(span: dict[str, Any], key: str, digits: int, issues: list[str], *,
            consequence: str = "skipped") -> str | None:
    value = span.get(key)
    if value is None:
        issues.append(f"has no {key}; {consequence}")
        return None
    if isinstance(value, str) and len(value) == digits and _is_hex(value):
        return value.lower()
    issues.append(f"has a bad {key} ({_shown(value)}, not {digits} hex digits); {consequence}")
    return None


_is_hex = re.compile("[0-9a-fA-F]*").fullmatch


def _text(container: dict[str, Any], key: str, issues: list[str]) -> str:
    value = container.get(key, "")
    if isinstance(value, str):
        return value
    issues.append(f"has a {key} that is {_kind(value)}, not text; read as empty")
    return ""


def _nanos(container: dict[str, Any], key: str, issues: list[str]) -> int:
    value = container.get(key, 0)
    nanos = _integer(value)
    if nanos is not None and 0 <= nanos <= _MAX_NANOS:
        return nanos
    issues.append(f"has a bad {key} ({_shown(value)}); read as 0")
    return 0


def _integer(value: Any) -> int | None:
    """An OTLP 64-bit integer: a JSON number or a decimal string (the protobuf JSON mapping allows both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # is_integer() is False for NaN and infinities
    if isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    return None


def _enum(value: Any, names: tuple[str, ...], prefix: str, what: str, issues: list[str]) -> str:
    if value is None:
        return names[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value.removeprefix(prefix) in names:
        return value.removeprefix(prefix)
    issues.append(f"has an unknown {what} ({_shown(value)}); read as {names[0]}")
    return names[0]


def _list(value: Any, what: str = "", issues: list[str] | None = None) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is not None and issues is not None:
        issues.append(f"has {what} that are {_kind(value)}, not a list; skipped")
    return []


def _attributes(encoded: Any, issues: list[str], depth: int = 0) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for item in _list(encoded, "attributes", issues):
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str):
            issues.append(f"has an attribute without a text key ({_shown(item)}); skipped")
            continue
        value = item.get("value")
        attributes[key] = _value(value if value is not None else {}, key, issues, depth)
    return attributes


def _value(encoded: Any, key: str, issues: list[str], depth: int) -> Any:
    """An OTLP AnyValue; a malformed one is None (and one issue), so the attribute reads as absent."""
    if depth >= _MAX_VALUE_DEPTH:
        issues.append(f"has attribute {key!r} nested deeper than {_MAX_VALUE_DEPTH} levels; read as empty")
        return None
    if not isinstance(encoded, dict):
        issues.append(f"has attribute {key!r} whose value is {_kind(encoded)}, not an AnyValue; read as empty")
        return None
    if not encoded:
        return None
    kind, value = next(iter(encoded.items()))
    decoded = _DECODERS.get(kind, _unknown)(value, key, issues, depth + 1)
    if decoded is _BAD:
        issues.append(f"has attribute {key!r} with a bad {kind} ({_shown(value)}); read as empty")
        return None
    return decoded


_BAD = object()


def _string(value: Any, key: str, issues: list[str], depth: int) -> Any:
    return value if isinstance(value, str) else _BAD


def _int(value: Any, key: str, issues: list[str], depth: int) -> Any:
    number = _integer(value)
    return number if number is not None and number in _INT64 else _BAD


def _double(value: Any, key: str, issues: list[str], depth: int) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and len(value) <= _MAX_DIGITS:
        try:
            return float(value)  # also "NaN", "Infinity", "-Infinity", as the protobuf JSON mapping spells them
        except ValueError:
            return _BAD
    return _BAD


def _bool(value: Any, key: str, issues: list[str], depth: int) -> Any:
    return value if isinstance(value, bool) else _BAD


def _array(value: Any, key: str, issues: list[str], depth: int) -> Any:
    values = value.get("values", []) if isinstance(value, dict) else None
    if not isinstance(values, list):
        return _BAD
    return tuple(_value(item, key, issues, depth) for item in values)


def _kvlist(value: Any, key: str, issues: list[str], depth: int) -> Any:
    return _attributes(value.get("values"), issues, depth) if isinstance(value, dict) else _BAD


def _bytes(value: Any, key: str, issues: list[str], depth: int) -> Any:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else _BAD
    except binascii.Error:
        return _BAD


def _unknown(value: Any, key: str, issues: list[str], depth: int) -> Any:
    return _BAD


_DECODERS = {"stringValue": _string, "intValue": _int, "doubleValue": _double, "boolValue": _bool,
             "arrayValue": _array, "kvlistValue": _kvlist, "bytesValue": _bytes}


def _kind(value: Any) -> str:
    """What a JSON value is, for a message ("a list"), without printing what may be huge or deep."""
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A short, safe rendering of a bad value for a message."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 40 else text[:39] + "…"
    return _kind(value)
