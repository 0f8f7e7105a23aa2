"""Token counting for the stand-in LM server: tiktoken `o200k_base` (the gpt-4o family's encoding), offline.

Prompt tokens follow OpenAI's published recipe for chat models (the cookbook's `num_tokens_from_messages`
for gpt-4o / gpt-4o-mini):

    prompt_tokens = 3                                   # every reply is primed with <|start|>assistant<|message|>
                  + sum over messages of (
                        3                               # <|start|>{role}<|message|> ... <|end|> framing
                        + tokens(role) + tokens(content)
                        + (tokens(name) + 1 if the message has a name) )

Content given as a list of parts counts the text of its `text` parts only (images and audio are not
priced here). Completion tokens are `tokens(answer text)`, the answer cut at the request's `max_tokens` when it has
more (`StandInLM`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

ENCODING_NAME = "o200k_base"
REPLY_PRIMING_TOKENS = 3
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1

_encoding: Any = None
_encoding_lock = threading.Lock()


class TokenizerUnavailable(RuntimeError):
    """tiktoken is missing or its BPE file cannot be loaded offline."""


def _point_tiktoken_at_litellm_bpe_files() -> None:
    # No network here: tiktoken can only load o200k_base from a cache directory. LiteLLM ships those BPE
    # files; find them through the import system *without importing litellm* (it costs ~2 s and ~160 MB).
    # A cache directory the user chose wins.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return
    package_dir = next(iter(spec.submodule_search_locations))
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(package_dir, "litellm_core_utils", "tokenizers")


def load_encoding() -> Any:
    """The shared tiktoken encoding, loaded once; raises TokenizerUnavailable with the fix in the message."""
    global _encoding
    if _encoding is not None:
        return _encoding
    with _encoding_lock:
        if _encoding is None:
            try:
                import tiktoken
            except ImportError as exc:
                raise TokenizerUnavailable(
                    "lmscope's stand-in LM server counts tokens with tiktoken, which is not installed: "
                    "pip install tiktoken  (or pip install 'lmscope[demo]')") from exc
            _point_tiktoken_at_litellm_bpe_files()
            try:
                _encoding = tiktoken.get_encoding(ENCODING_NAME)
            except Exception as exc:  # tiktoken tried to download the BPE file and could not
                raise TokenizerUnavailable(
                    f"tiktoken could not load {ENCODING_NAME!r} offline (TIKTOKEN_CACHE_DIR="
                    f"{os.environ.get('TIKTOKEN_CACHE_DIR')!r}); install litellm, which ships the BPE file, "
                    f"or point TIKTOKEN_CACHE_DIR at a directory holding it: {exc}") from exc
    return _encoding


def encode(text: str) -> list[int]:
    # disallowed_special=() : a prompt that happens to contain "<|endoftext|>" is text, not an error.
    tokens: list[int] = load_encoding().encode(text, disallowed_special=())
    return tokens


def decode(tokens: Sequence[int]) -> str:
    text: str = load_encoding().decode(list(tokens))
    return text


def count_tokens(text: str) -> int:
    """Tokens of `text` in o200k_base: the tokenizer the stand-in server uses for every count."""
    return len(encode(text))


def content_text(content: Any) -> str:
    """A message's content as text: a string as is, a list of parts as the concatenation of its text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(part.get("text") or "" for part in content
                       if isinstance(part, Mapping) and part.get("type", "text") == "text")
    return str(content)


def prompt_token_ids(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The token sequence of a chat prompt, framing included, so len() is prompt_tokens (see module doc).

    The framing tokens are not real o200k ids; they are placeholders (-1) that only make the length and
    the prefix comparison of the prompt-cache simulation come out right.
    """
    ids: list[int] = []
    for message in messages:
        ids.extend([-1] * TOKENS_PER_MESSAGE)
        ids.extend(encode(str(message.get("role") or "")))
        ids.extend(encode(content_text(message.get("content"))))
        if message.get("name"):
            ids.extend([-1] * TOKENS_PER_NAME)
            ids.extend(encode(str(message["name"])))
    ids.extend([-1] * REPLY_PRIMING_TOKENS)
    return ids


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """prompt_tokens as the server reports them for `messages` (see module doc for the formula)."""
    return len(prompt_token_ids(messages))
