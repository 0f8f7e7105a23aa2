"""A failed call on its span: the exception event, status ERROR and `error.type`, recorded as captured content is.

Shared by the DSPy and LiteLLM instrumentations. An error message often quotes its input (a connection string, a
request, a config dict) or, for DSPy's parse errors, the LM's answer: message and traceback are scrubbed and cut by
the content policy, and the LM's text is left out when outputs are not captured.
"""

from __future__ import annotations

import traceback

from opentelemetry.trace import Span, Status, StatusCode

from ..telemetry import _semconv as semconv
from ..telemetry._content import ContentPolicy, truncate


def record_error(span: Span, error: BaseException, policy: ContentPolicy) -> None:
    """The exception event, status and `error.type`; message and traceback scrubbed and cut like content (an
    error often quotes its input: a connection string, a request, a config dict)."""
    if not span.is_recording():  # all of it would be dropped: skip formatting and scrubbing the traceback
        return
    message = _exception_event(span, error, policy)
    # Cut as a whole: the message alone may already be `max_chars` long, and the type name goes before it.
    span.set_status(Status(StatusCode.ERROR, truncate(f"{type(error).__name__}: {message}", policy.max_chars)))
    span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)


def record_failed_request(span: Span, error: BaseException, policy: ContentPolicy) -> None:
    """The exception event of a request that failed and was sent again, on the span of the call that sent it: the
    call went on, so neither its status nor its `error.type` say it failed."""
    if span.is_recording():
        _exception_event(span, error, policy)


def _exception_event(span: Span, error: BaseException, policy: ContentPolicy) -> str:
    """Add the exception event, its message and traceback scrubbed and cut; the message scrubbed, not cut."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - what the SDK would fail on too
        message = f"<unprintable {type(error).__name__}>"
    stacktrace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if not policy.capture_outputs:  # a parse error quotes what the LM said: output content, not captured here
        for said in _lm_responses(error):
            message, stacktrace = message.replace(said, _NOT_CAPTURED), stacktrace.replace(said, _NOT_CAPTURED)
    message, redacted = policy.scrubber.text(message, _EXCEPTION_MESSAGE, free_text=True)
    stacktrace, stack_redacted = policy.text(stacktrace, _EXCEPTION_STACKTRACE, free_text=True)
    attributes = {_EXCEPTION_MESSAGE: truncate(message, policy.max_chars), _EXCEPTION_STACKTRACE: stacktrace}
    try:
        span.record_exception(error, attributes)
    except Exception:  # noqa: BLE001 - the SDK's own str(error) raised: the same event, with the message made here
        span.add_event("exception", {_EXCEPTION_TYPE: _type_name(type(error)), **attributes,
                                     _EXCEPTION_ESCAPED: "False"})
    if redacted or stack_redacted:
        span.set_attribute(semconv.SCRUBBED, True)
    return message


def _type_name(cls: type) -> str:
    """`exception.type` as the SDK's `record_exception` writes it: the qualified name, without `builtins.`."""
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


_EXCEPTION_TYPE = "exception.type"
_EXCEPTION_ESCAPED = "exception.escaped"
_EXCEPTION_MESSAGE = "exception.message"
_EXCEPTION_STACKTRACE = "exception.stacktrace"
_NOT_CAPTURED = "[LM output not captured]"
_MAX_CHAIN = 8
_MIN_REPLACED_CHARS = 4


def _lm_responses(error: BaseException) -> list[str]:
    """When an exception along `error`'s chain carries the LM's text (`AdapterParseError.lm_response`): that text
    and the message of every exception of the chain (the parse error's, pydantic's beneath it, which quote the LM's
    values), longest first so a longer text is replaced before a part of it. Otherwise none."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < _MAX_CHAIN and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    said = [text for text in (getattr(link, "lm_response", None) for link in chain) if isinstance(text, str)]
    if not said:
        return []
    texts = {text for text in said if text.strip()}
    for link in chain:
        try:
            texts.add(str(link))
        except Exception:  # noqa: BLE001 - an unprintable one is printed as such by traceback too
            continue
    return sorted((text for text in texts if len(text) >= _MIN_REPLACED_CHARS), key=len, reverse=True)
