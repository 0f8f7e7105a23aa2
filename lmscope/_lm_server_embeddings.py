"""OpenAI Embeddings for the stand-in LM server: `POST /v1/embeddings`, with honest token counts.

`input` is a string, a list of strings, or pre-tokenized (a list of token ids, or a list of such lists), as OpenAI
accepts it. `usage.prompt_tokens` is the o200k_base token count of every input summed (ids count as themselves), the
tokenizer of every count the server makes (`_lm_server_tokens`). Vectors are deterministic (a SHA-256 stream of the
input, unit length), so the same text always gets the same vector and similar searches are repeatable; they carry
no meaning. `encoding_format: "base64"` (what the `openai` client asks for by default) gets little-endian float32,
as OpenAI sends it. `dimensions` picks the length (default 64).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._lm_server_tokens import count_tokens

EMBEDDINGS_PATH = "/v1/embeddings"
DEFAULT_DIMENSIONS = 64
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048  # OpenAI's limit of inputs per request


class BadEmbeddingRequest(ValueError):
    """The body is not an embeddings request; answered with 400."""


@dataclass(frozen=True)
class Embeddings:
    model: str
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int
    base64: bool

    def body(self) -> dict[str, Any]:
        data = [{"object": "embedding", "index": index, "embedding": _encoded(vector, self.base64)}
                for index, vector in enumerate(self.vectors)]
        return {"object": "list", "data": data, "model": self.model,
                "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}}


def embed(body: Any) -> Embeddings:
    """Answer a parsed /v1/embeddings body; raises BadEmbeddingRequest when it is not one."""
    if not isinstance(body, dict):
        raise BadEmbeddingRequest("The request body must be a JSON object.")
    model, dimensions = body.get("model"), body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(model, str) or not model:
        raise BadEmbeddingRequest("You must provide a model parameter.")
    if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise BadEmbeddingRequest(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}.")
    inputs = _inputs(body.get("input"))
    vectors, tokens = [], 0
    for item in inputs:
        if isinstance(item, str):
            tokens += count_tokens(item)
            seed = item.encode()
        else:
            tokens += len(item)
            seed = struct.pack(f"<{len(item)}q", *item)
        vectors.append(_vector(model.encode() + b"\0" + seed, dimensions))
    return Embeddings(model=model, vectors=tuple(vectors), prompt_tokens=tokens,
                      base64=body.get("encoding_format") == "base64")


def _inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(type(token) is int for token in value):
        return [value]  # one pre-tokenized input
    if isinstance(value, list) and 0 < len(value) <= MAX_INPUTS and all(
            isinstance(item, str) or (isinstance(item, list) and item and all(type(t) is int for t in item))
            for item in value):
        return value
    raise BadEmbeddingRequest(f"'input' must be a string, a list of 1 to {MAX_INPUTS} strings, or token id lists.")


def _vector(seed: bytes, dimensions: int) -> tuple[float, ...]:
    stream = b""
    block = 0
    while len(stream) < 4 * dimensions:
        stream += hashlib.sha256(seed + block.to_bytes(4, "little")).digest()
        block += 1
    raw = [value / 2**31 for value in struct.unpack(f"<{dimensions}i", stream[:4 * dimensions])]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return tuple(value / norm for value in raw)


def _encoded(vector: Sequence[float], as_base64: bool) -> Any:
    if not as_base64:
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
