"""LiteLLM's own switches that keep a call's messages from its logging integrations, which lmscope's span honours.

Read as LiteLLM reads them (`litellm_core_utils/redact_messages.py`, `should_redact_message_logging`;
`initialize_dynamic_callback_params.py`; `litellm_logging.py`, `should_run_callback`), in this order:
- `"no-log": True` among the call's arguments: LiteLLM runs none of its callbacks (unless
  `litellm.global_disable_no_log_param` is set);
- a `litellm-disable-message-redaction` header (in the call's `metadata["headers"]`, as LiteLLM's proxy passes
  them): messages are logged, whatever else says;
- `turn_off_message_logging` (a bool, or `"true"` / `"false"`) among the call's arguments, else in its
  `litellm_metadata` or `metadata`;
- a `litellm-enable-message-redaction` (or `x-...`) header: messages are hidden;
- `litellm.turn_off_message_logging = True`, for every call.

lmscope's span of a call whose messages LiteLLM hides records no content, inputs nor outputs: it keeps what the call
cost (model, tokens, price, timing), which LiteLLM's callbacks get too. Read per call: the app may flip them at any
time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

_SWITCH: Final = "turn_off_message_logging"
_METADATA_SLOTS: Final = ("litellm_metadata", "metadata")
"""Where LiteLLM also looks for a per-call switch, in its order (`_CLIENT_CALLBACK_METADATA_SLOTS`)."""
_ENABLE_HEADERS: Final = ("litellm-enable-message-redaction", "x-litellm-enable-message-redaction")
_DISABLE_HEADER: Final = "litellm-disable-message-redaction"
_PER_CALL_KEYS: Final = frozenset(("no-log", _SWITCH, *_METADATA_SLOTS))
"""The arguments any per-call switch is read from: a call with none of them (most) goes by the global one."""


def messages_hidden_by_litellm(kwargs: Mapping[str, Any]) -> bool:
    """Whether LiteLLM keeps this call's messages from its logging integrations."""
    import litellm  # imported already: this runs inside one of its calls

    if _PER_CALL_KEYS.isdisjoint(kwargs):
        return getattr(litellm, "turn_off_message_logging", False) is True
    if kwargs.get("no-log") is True and not getattr(litellm, "global_disable_no_log_param", False):
        return True
    metadata = [slot for slot in (kwargs.get(name) for name in _METADATA_SLOTS) if isinstance(slot, Mapping)]
    headers = _headers(kwargs)
    if headers is not None and headers.get(_DISABLE_HEADER):
        return False
    per_call = _as_bool(kwargs[_SWITCH]) if _SWITCH in kwargs else next(
        (_as_bool(slot[_SWITCH]) for slot in metadata if _SWITCH in slot), None)
    if per_call is not None:
        return per_call
    if headers is not None and any(headers.get(name) for name in _ENABLE_HEADERS):
        return True
    return getattr(litellm, "turn_off_message_logging", False) is True


def _headers(kwargs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request headers LiteLLM reads redaction headers from: its metadata's `headers` (`litellm_metadata` when the
    call has one, else `metadata`: `get_metadata_variable_name_from_kwargs`)."""
    metadata = kwargs.get("litellm_metadata") if "litellm_metadata" in kwargs else kwargs.get("metadata")
    headers = metadata.get("headers") if isinstance(metadata, Mapping) else None
    return headers if isinstance(headers, Mapping) else None


def _as_bool(value: Any) -> bool | None:
    """A per-call switch as LiteLLM reads it: a bool, or a string "true" / "false" (a header's value); else unset."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
