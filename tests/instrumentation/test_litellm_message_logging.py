"""LiteLLM's own switches that keep a call's messages out of its logging integrations: lmscope's span of such a call
carries no content (no prompt, no answer, in either convention) but still what the call cost; a call LiteLLM logs
keeps its content. The switches are read as LiteLLM reads them (`litellm_core_utils/redact_messages.py`,
`litellm_logging.py`): the per-call one wins over the global one, `no-log` over both unless LiteLLM disables it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import litellm
import pytest
from app_env import app_env
from litellm_span import litellm_price

from lmscope.telemetry import _semconv as semconv

MODEL = "openai/gpt-4o-mini"
_CONTENT_PREFIXES = ("input.", "output.", "llm.input_messages", "llm.output_messages", "gen_ai.input.messages",
                     "gen_ai.output.messages", "gen_ai.system_instructions")


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


HIDDEN = [
    (True, {}),
    (False, {"turn_off_message_logging": True}),
    (False, {"turn_off_message_logging": "true"}),
    (False, {"metadata": {"turn_off_message_logging": True}}),
    (False, {"metadata": _ENABLE}),
    (True, {"turn_off_message_logging": None, "metadata": {"turn_off_message_logging": False}}),
    (False, {"no-log": True}),
]
SHOWN = [
    (False, {}),
    (True, {"turn_off_message_logging": False}),
    (True, {"metadata": {"turn_off_message_logging": False}}),
    (True, {"turn_off_message_logging": True, "metadata": _DISABLE}),
    (False, {"no-log": False}),
]


@pytest.mark.parametrize(("global_switch", "switches"), HIDDEN,
                         ids=["global", "per-call", "per-call-string", "in-metadata", "header", "top-level-none-wins",
                              "no-log"])
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_a_call_litellm_logs_no_messages_of_has_no_content_on_its_span(litellm_spans, lm_server, unique, monkeypatch,
                                                                      global_switch, switches, stream):
    monkeypatch.setattr(litellm, "turn_off_message_logging", global_switch)
    _call(lm_server, unique, stream=stream, stream_options={"include_usage": True} if stream else None, **switches)

    (span,) = litellm_spans()
    assert _content(span) == {}
    assert not any(unique in str(value) for value in span.attributes.values())
    attributes = span.attributes  # what the call cost stays: tokens from the server's bill, LiteLLM's price
    billed = (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert billed[0] > 0 and billed[1] > 0
    assert attributes[semconv.GEN_AI_USAGE_COST] == pytest.approx(litellm_price(*billed), rel=1e-9)


@pytest.mark.parametrize(("global_switch", "switches"), SHOWN,
                         ids=["default", "per-call-wins", "in-metadata-wins", "disable-header-wins", "no-log-false"])
def test_a_call_litellm_logs_the_messages_of_keeps_its_content(litellm_spans, lm_server, unique, monkeypatch,
                                                              global_switch, switches):
    monkeypatch.setattr(litellm, "turn_off_message_logging", global_switch)
    question = _call(lm_server, unique, **switches)

    (span,) = litellm_spans()
    assert question in span.attributes[semconv.INPUT_VALUE]
    assert span.attributes[f"{semconv.LLM_INPUT_MESSAGES}.0.message.content"] == question


def test_no_log_is_honoured_unless_litellm_disables_it(litellm_spans, lm_server, unique, monkeypatch):
    """`litellm.global_disable_no_log_param`: LiteLLM logs `no-log` calls as any other, and so does lmscope."""
    monkeypatch.setattr(litellm, "global_disable_no_log_param", True)
    question = _call(lm_server, unique, **{"no-log": True})

    (span,) = litellm_spans()
    assert span.attributes[f"{semconv.LLM_INPUT_MESSAGES}.0.message.content"] == question


PARITY_APP = textwrap.dedent("""
    import json, sys, time
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    import lmscope
    lmscope.instrument(exporters="none", capture_content=True)
    import litellm
    logged = []
    litellm.success_callback = [lambda kwargs, *_: logged.append(str(kwargs.get("messages")))]
    litellm_hid, lmscope_hid = [], []
    for index, (global_switch, switches) in enumerate(json.loads(sys.argv[2])):
        litellm.turn_off_message_logging = global_switch
        question, before = f"question {index} is confidential", len(logged)
        litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": question}],
                           api_base=sys.argv[1], api_key="sk-anything", **switches)
        deadline = time.monotonic() + (1 if switches.get("no-log") else 20)  # LiteLLM logs from a thread of its own
        while len(logged) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        litellm_hid.append(len(logged) == before or question not in logged[before])
        span = exporter.get_finished_spans()[-1]
        lmscope_hid.append(not any(question in str(value) for value in span.attributes.values()))
    print(json.dumps({"litellm": litellm_hid, "lmscope": lmscope_hid}))
""")


def test_lmscope_hides_the_messages_of_exactly_the_calls_litellm_hides_them_from_its_callbacks(lm_server, tmp_path):
    """The yardstick, in a process of its own (LiteLLM's callback state is global): every case above, with what
    LiteLLM's own success callback got next to what lmscope's span holds."""
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    cases = HIDDEN + SHOWN
    done = subprocess.run([sys.executable, "-c", PARITY_APP, lm_server.base_url, json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = [True] * len(HIDDEN) + [False] * len(SHOWN)
    assert result == {"litellm": expected, "lmscope": expected}
