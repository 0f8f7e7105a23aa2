"""The structured messages an LM span must carry, derived independently from what DSPy sent and got back.

`pop_messages(attributes, messages, outputs)` pops every `llm.input_messages.*`, `llm.output_messages.*`,
`gen_ai.system_instructions`, `gen_ai.input.messages` and `gen_ai.output.messages` key and asserts each value, so
an exhaustive attribute test stays exhaustive. Text-only chat messages (what ChatAdapter and JSONAdapter send).
Import it as `from chat_messages import pop_messages` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

from lmscope.telemetry import _semconv as semconv


def pop_messages(attributes: dict[str, Any], messages: list[dict[str, Any]], outputs: list[Any],
                 finish_reasons: tuple[str, ...] = ("stop",)) -> None:
    for index, message in enumerate(messages):
        prefix = f"{semconv.LLM_INPUT_MESSAGES}.{index}.message."
        assert attributes.pop(prefix + "role") == message["role"]
        assert attributes.pop(prefix + "content") == message["content"]
    system = [{"type": "text", "content": m["content"]} for m in messages if m["role"] == "system"]
    chat = [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
            for m in messages if m["role"] != "system"]
    if system:
        assert json.loads(attributes.pop(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)) == system
    assert json.loads(attributes.pop(semconv.GEN_AI_INPUT_MESSAGES)) == chat
    answers = []
    for index, output in enumerate(outputs):
        text = output["text"] if isinstance(output, dict) else output
        prefix = f"{semconv.LLM_OUTPUT_MESSAGES}.{index}.message."
        assert attributes.pop(prefix + "role") == "assistant"
        assert attributes.pop(prefix + "content") == text
        answers.append({"role": "assistant", "parts": [{"type": "text", "content": text}],
                        "finish_reason": finish_reasons[index]})
    assert json.loads(attributes.pop(semconv.GEN_AI_OUTPUT_MESSAGES)) == answers
