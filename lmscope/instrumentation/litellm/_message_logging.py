"""LiteLLM's own switches that keep a call's messages from its logging integrations, which lmscope's span honours.

A LiteLLM app turns message logging off for every call (`litellm.turn_off_message_logging = True`: its callbacks get
"redacted-by-litellm" in place of the prompt and the answer) or for one call (`turn_off_message_logging=True` among
its arguments, which wins over the global switch either way, or `"no-log": True`, with which LiteLLM runs none of its
callbacks unless `litellm.global_disable_no_log_param` is set), as `litellm_core_utils/redact_messages.py`
(`should_redact_message_logging`) and `litellm_logging.py` (`should_run_callback`) read them. lmscope's span of such a
call then records no content, inputs nor outputs: it keeps what the call cost (model, tokens, price, timing), which
is not the messages, and what LiteLLM's callbacks would get anyway. Read per call: the app may flip them at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_PER_CALL = "turn_off_message_logging"
_NO_LOG = "no-log"


def messages_hidden_by_litellm(kwargs: Mapping[str, Any]) -> bool:
    """Whether LiteLLM keeps this call's messages from its logging integrations."""
    import litellm  # imported already: this runs inside one of its calls

    if kwargs.get(_NO_LOG) is True and not getattr(litellm, "global_disable_no_log_param", False):
        return True
    per_call = _as_bool(kwargs.get(_PER_CALL))
    if per_call is not None:
        return per_call
    return getattr(litellm, "turn_off_message_logging", False) is True


def _as_bool(value: Any) -> bool | None:
    """A per-call switch as LiteLLM reads it: a bool, or a string "true" / "false" (a header's value); else unset."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
