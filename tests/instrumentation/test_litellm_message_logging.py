"""LiteLLM's own switches that keep a call's messages out of its logging integrations: lmscope's span of such a call
carries no content (no prompt, no answer, in either convention) but still what the call cost; a call LiteLLM logs
keeps its content. The switches are read as LiteLLM reads them (`litellm_core_utils/redact_messages.py`,
`litellm_logging.py`): the per-call one wins over the global one, `no-log` over both unless LiteLLM disables it."""

from __future__ import annotations

import copy
import time

import litellm
import pytest
from litellm_span import litellm_price

from lmscope.telemetry import _semconv as semconv

MODEL = "openai/gpt-4o-mini"
_CONTENT_PREFIXES = ("input.", "output.", "llm.input_messages", "llm.output_messages", "gen_ai.input.messages",
                     "gen_ai.output.messages", "gen_ai.system_instructions")


@pytest.fixture
def logged(monkeypatch):
    """What LiteLLM hands its own logging callbacks, the yardstick: `logged(wait)` waits up to `wait` seconds for the
    messages of the next call LiteLLM logs (it logs a sync call's success from a thread of its own), None if none."""
    seen: list[str] = []
    monkeypatch.setattr(litellm, "success_callback", [lambda kwargs, *_: seen.append(str(kwargs.get("messages")))])

    def next_logged(wait: float) -> str | None:
        deadline = time.monotonic() + wait
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        return seen.pop(0) if seen else None

    return next_logged


def _content(span) -> dict[str, object]:
    return {key: value for key, value in span.attributes.items() if key.startswith(_CONTENT_PREFIXES)}


def _call(lm_server, unique, stream=False, **switches):
    question = f"My diagnosis is confidential {unique}"
    response = litellm.completion(model=MODEL, messages=[{"role": "user", "content": question}],
                                  api_base=lm_server.base_url, api_key="sk-anything", stream=stream,
                                  **copy.deepcopy(switches))  # LiteLLM writes into the metadata it is given
    if stream:
        for _chunk in response:
            pass
    return question


_ENABLE = {"headers": {"litellm-enable-message-redaction": "true"}}
_DISABLE = {"headers": {"litellm-disable-message-redaction": "true"}}


@pytest.mark.parametrize(("global_switch", "switches"), [
    (True, {}),
    (False, {"turn_off_message_logging": True}),
    (False, {"turn_off_message_logging": "true"}),
    (False, {"metadata": {"turn_off_message_logging": True}}),
    (False, {"metadata": _ENABLE}),
    (True, {"turn_off_message_logging": None, "metadata": {"turn_off_message_logging": False}}),
    (False, {"no-log": True}),
], ids=["global", "per-call", "per-call-string", "in-metadata", "header", "top-level-none-wins", "no-log"])
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_a_call_litellm_logs_no_messages_of_has_no_content_on_its_span(litellm_spans, lm_server, unique, monkeypatch,
                                                                      logged, global_switch, switches, stream):
    monkeypatch.setattr(litellm, "turn_off_message_logging", global_switch)
    _call(lm_server, unique, stream=stream, stream_options={"include_usage": True} if stream else None, **switches)
    if not stream:  # LiteLLM's own callbacks got the messages redacted, or nothing at all (`no-log`)
        seen = logged(1.0 if "no-log" in switches else 10.0)
        assert seen is None if "no-log" in switches else "redacted-by-litellm" in seen and unique not in seen

    (span,) = litellm_spans()
    assert _content(span) == {}
    assert not any(unique in str(value) for value in span.attributes.values())
    attributes = span.attributes  # what the call cost stays: tokens from the server's bill, LiteLLM's price
    billed = (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert billed[0] > 0 and billed[1] > 0
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(litellm_price(*billed), rel=1e-9)


@pytest.mark.parametrize(("global_switch", "switches"), [
    (False, {}),
    (True, {"turn_off_message_logging": False}),
    (True, {"metadata": {"turn_off_message_logging": False}}),
    (True, {"turn_off_message_logging": True, "metadata": _DISABLE}),
    (False, {"no-log": False}),
], ids=["default", "per-call-wins", "in-metadata-wins", "disable-header-wins", "no-log-false"])
def test_a_call_litellm_logs_the_messages_of_keeps_its_content(litellm_spans, lm_server, unique, monkeypatch,
                                                              logged, global_switch, switches):
    monkeypatch.setattr(litellm, "turn_off_message_logging", global_switch)
    question = _call(lm_server, unique, **switches)
    assert question in logged(10.0)  # as LiteLLM's own callbacks got them

    (span,) = litellm_spans()
    assert question in span.attributes[semconv.INPUT_VALUE]
    assert span.attributes[f"{semconv.LLM_INPUT_MESSAGES}.0.message.content"] == question


def test_no_log_is_honoured_unless_litellm_disables_it(litellm_spans, lm_server, unique, monkeypatch):
    """`litellm.global_disable_no_log_param`: LiteLLM logs `no-log` calls as any other, and so does lmscope."""
    monkeypatch.setattr(litellm, "global_disable_no_log_param", True)
    question = _call(lm_server, unique, **{"no-log": True})

    (span,) = litellm_spans()
    assert span.attributes[f"{semconv.LLM_INPUT_MESSAGES}.0.message.content"] == question
