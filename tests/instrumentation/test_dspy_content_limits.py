"""Nothing huge on spans: values cut to `max_content_chars` with a marker, binary described rather than copied, and
the privacy switches obeyed, on real DSPy runs against the stand-in LM server (both engines). What the program
sends the LM is untouched."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import wave
import zlib
from typing import Any

import dspy
import pytest
from content_spans import by_name as _by_name
from content_spans import lm_span as _lm_span
from dspy_release import needs_dspy
from side_input_program import AsksWithASideInput

from lmscope._instrument import _content_policy
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._content import ContentPolicy
from lmscope.telemetry._options import resolve_options

CONTENT_KEYS = (semconv.INPUT_VALUE, semconv.OUTPUT_VALUE)


def _png(width: int, height: int) -> bytes:
    """A real, valid PNG of random pixels (stored uncompressed): ~3 bytes a pixel, as a screenshot might cost."""
    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0))
            + chunk(b"IEND", b""))


def _description(kind: str, mime: str, data: bytes) -> str:
    return f"[{kind} {mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}]"


def _attribute_chars(finished: Any) -> int:
    return sum(len(str(key)) + len(str(value)) for span in finished for key, value in span.attributes.items())


def test_long_content_is_cut_with_a_marker(traced, make_lm, unique):
    spans = traced(ContentPolicy(max_chars=300))
    dspy.configure(lm=make_lm())
    question = f"{unique} " + "Tell me about Paris. " * 100
    dspy.Predict("question -> answer")(question=question)

    finished = spans()
    full = json.dumps({"question": question}, ensure_ascii=False)
    kept = 300 - len(f"…[truncated {len(full) - 277} chars]")
    assert _by_name(finished, "predict").attributes[semconv.INPUT_VALUE] == (
        full[:kept] + f"…[truncated {len(full) - kept} chars]")
    lm_input = _lm_span(finished).attributes[semconv.INPUT_VALUE]
    assert len(lm_input) == 300 and lm_input.endswith(" chars]") and "…[truncated " in lm_input
    assert all(len(str(v)) <= 300 for span in finished for k, v in span.attributes.items() if k in CONTENT_KEYS)


def test_image_is_described_not_copied_and_reaches_the_lm_unchanged(traced, make_lm, lm_server, unique):
    """One 300 KB PNG put ~0.8 MB of base64 on two spans; now a short description, and the LM still gets it all."""
    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm(cache=False))
    png = _png(316, 316)
    assert len(png) > 295_000
    image = dspy.Image(png)
    dspy.Predict("image, note -> answer")(image=image, note=f"What is in the picture? {unique}")

    finished = spans()
    sent_png = base64.b64decode(image.url.removeprefix("data:image/png;base64,"))  # DSPy re-encodes through PIL
    described = _description("image", "image/png", sent_png)
    predict, lm = _by_name(finished, "predict"), _lm_span(finished)
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps(
        {"image": described, "note": f"What is in the picture? {unique}"})
    lm_parts = [part for message in json.loads(lm.attributes[semconv.INPUT_VALUE])
                if isinstance(message["content"], list) for part in message["content"]]
    assert {"type": "image_url", "image_url": {"url": described}} in lm_parts
    image_keys = [key for key, value in lm.attributes.items() if value == described]  # the chat view's image part
    assert [key.removeprefix(semconv.LLM_INPUT_MESSAGES) for key in image_keys] == [
        ".1.message.contents.1.message_content.image.image.url"]
    assert lm.attributes[image_keys[0].replace("image.image.url", "type")] == "image"
    user_parts = json.loads(lm.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"]
    assert {"type": "blob", "modality": "image", "content": described} in user_parts
    assert _attribute_chars(finished) < 20_000
    assert semconv.SCRUBBED not in predict.attributes  # a description is not a redaction
    (body,) = lm_server.received
    sent = [part for message in body["messages"] if isinstance(message["content"], list)
            for part in message["content"] if part.get("type") == "image_url"]
    assert sent == [{"type": "image_url", "image_url": {"url": image.url}}] and len(image.url) > 400_000


class _Store(dspy.Module):
    def forward(self, blob: Any, clip: Any) -> Any:
        return dspy.Prediction(size=len(blob))


@needs_dspy((3, 3), "dspy.Audio(bytes, audio_format=...)")
def test_raw_bytes_and_audio_are_described(traced):
    spans = traced(ContentPolicy())
    raw = os.urandom(50_000)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(os.urandom(16_000))
    wav = buffer.getvalue()
    _Store()(blob=raw, clip=dspy.Audio(wav, audio_format="wav"))

    (span,) = spans()
    assert span.attributes[semconv.INPUT_VALUE] == json.dumps(
        {"blob": _description("binary", "application/octet-stream", raw), "clip": _description("audio", "audio/wav",
                                                                                               wav)})
    assert span.attributes[semconv.OUTPUT_VALUE] == '{"size": 50000}'


@pytest.mark.parametrize(("env", "inputs", "outputs"), [
    ({"OPENINFERENCE_HIDE_INPUTS": "true"}, False, True),
    ({"OPENINFERENCE_HIDE_OUTPUTS": "true"}, True, False),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}, False, False),
])
def test_privacy_switches_hide_content_on_every_span(traced, make_lm, unique, monkeypatch, clean_env, env, inputs,
                                                    outputs):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spans = traced(_content_policy(resolve_options(), None))  # what lmscope.instrument() resolves
    dspy.configure(lm=make_lm())
    from lmscope._demo import build_program

    build_program(retrieve=lambda query: ["Paris is the capital of France."])(question=f"Capital of France? {unique}")

    finished = spans()
    assert len(finished) == 7
    for span in finished:
        if span.name != "rag.retrieve":  # a retriever's input is a query too; every other span has both sides
            assert (semconv.INPUT_VALUE in span.attributes) is inputs, span.name
            assert (semconv.OUTPUT_VALUE in span.attributes) is outputs, span.name
    lm_keys = [key for span in finished if span.name.startswith("chat") for key in span.attributes]
    for prefix, captured in ((semconv.LLM_INPUT_MESSAGES, inputs), (semconv.GEN_AI_INPUT_MESSAGES, inputs),
                             (semconv.GEN_AI_SYSTEM_INSTRUCTIONS, inputs), (semconv.LLM_OUTPUT_MESSAGES, outputs),
                             (semconv.GEN_AI_OUTPUT_MESSAGES, outputs)):
        assert any(key.startswith(prefix) for key in lm_keys) is captured, prefix
    documents = _by_name(finished, "rag.retrieve").attributes
    content = f"{semconv.RETRIEVAL_DOCUMENTS}.0.{semconv.DOCUMENT_CONTENT}"
    assert (content in documents) is outputs  # retrieved text is an output (OpenInference: output.documents)
    assert documents[f"{semconv.RETRIEVAL_DOCUMENTS}.0.{semconv.DOCUMENT_ID}"] == "0"


def test_an_int_too_long_to_write_is_recorded_as_its_size(traced, make_lm, unique):
    """Python writes no int of more than 4,300 digits (str() and JSON raise ValueError): the module's whole input was
    recorded as `<unprintable dict>`, and an `lmscope.context` holding one lost every attribute, its session too."""
    import lmscope

    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm())
    huge = 10**5000
    with lmscope.context(session_id=f"session-{unique}", metadata={"seed": huge}):
        assert AsksWithASideInput()(question=f"capital of France? {unique}", side=huge).answer
    module = _by_name(spans(), "asks_with_a_side_input")
    assert json.loads(module.attributes[semconv.INPUT_VALUE]) == {"question": f"capital of France? {unique}",
                                                                   "side": "<int of 16610 bits>"}
    assert module.attributes[semconv.SESSION_ID] == f"session-{unique}"
    assert json.loads(module.attributes[semconv.METADATA]) == {"seed": "<int of 16610 bits>"}


def test_a_hex_dump_is_described_by_the_bytes_it_spells(traced):
    """Hex digits are base64 characters too: a tool printing bytes as hex (`.hex()`, a dump wrapped in lines) must be
    described by those bytes, not by a base64 decoding of its digits (another size, another hash)."""
    spans = traced(ContentPolicy())
    png = _png(16, 16)
    wrapped = "\n".join(png.hex()[i:i + 64] for i in range(0, 2 * len(png), 64))
    zeros = bytes(768)
    tool = dspy.Tool(lambda path: {"flat": png.hex(), "upper": png.hex().upper(), "wrapped": wrapped,
                                   "short": png.hex()[:64], "zeros_hex": zeros.hex(),
                                   "zeros_base64": base64.b64encode(zeros).decode()}, name="read_file")

    tool(path="logo.png")

    (span,) = spans()
    described = _description("image", "image/png", png)
    zeros_described = _description("binary", "application/octet-stream", zeros)
    assert json.loads(span.attributes[semconv.OUTPUT_VALUE]) == {
        "flat": described, "upper": described, "wrapped": described, "short": png.hex()[:64],
        "zeros_hex": zeros_described, "zeros_base64": zeros_described}  # base64 of zeros is 1024 "A"s: hex digits
