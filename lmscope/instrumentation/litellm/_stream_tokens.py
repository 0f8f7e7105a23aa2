"""A stream's tokens when the provider sent no usage chunk: LiteLLM's token counter over the prompt and the answers the
stream delivered, as LiteLLM counts the response it assembles from the chunks (docs/litellm-internals.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._token_counts import get
from ._spans import CallFrame
from ._stream_answers import counted_text


def estimate_tokens(frame: CallFrame, messages: Any, answers: list[Any]) -> tuple[int, int]:
    """(prompt, completion) tokens by LiteLLM's counter for the model, when the provider sent no usage: what it counts
    of the response it assembles from the chunks (`counted_text`), and of the prompt (`counted_prompt`)."""
    import litellm

    model = str(frame.kwargs.get("model") or "")
    prompt = counted_prompt(model, messages) if messages else litellm.token_counter(
        model=model, text=str(frame.kwargs.get("prompt") or ""))
    completion = sum(litellm.token_counter(model=model, text=counted_text(answer), count_response_tokens=True)
                     for answer in answers)
    return int(prompt), int(completion)


def counted_prompt(model: str, messages: Any) -> int:
    """The prompt's tokens as LiteLLM counts them, but for two ways its counter fails the program: it fetches a remote
    image of `detail: "high"` to measure it (a second download of a URL the program gave the provider, which the
    program's last read of the stream would wait for), counted here as `detail: "auto"` (LiteLLM's estimate for a URL,
    no request); and it raises on a part it cannot count (`input_audio`), where the text of the messages is counted
    alone, else nothing."""
    import litellm

    try:
        return int(litellm.token_counter(model=model, messages=_unfetched(messages)))
    except Exception:  # noqa: BLE001 - a part LiteLLM's counter does not know
        pass
    try:
        return int(litellm.token_counter(model=model, messages=_text_only(messages)))
    except Exception:  # noqa: BLE001 - the estimate is left at 0, the span says it is estimated
        return 0


def _fetched(part: Any) -> bool:
    """A content part LiteLLM's counter downloads: a remote image asked for in high detail."""
    image = part.get("image_url") if isinstance(part, Mapping) and part.get("type") == "image_url" else None
    return isinstance(image, Mapping) and image.get("detail") == "high" \
        and not str(image.get("url", "")).startswith("data:")


def _unfetched(messages: Any) -> Any:
    """`messages`, or a copy whose high-detail remote images say `detail: "auto"` (LiteLLM's counter then estimates
    them from the URL alone)."""
    if not any(isinstance(m, Mapping) and isinstance(m.get("content"), list) and any(map(_fetched, m["content"]))
               for m in messages):
        return messages
    return [{**message, "content": [{**part, "image_url": {**part["image_url"], "detail": "auto"}}
                                    if _fetched(part) else part for part in message["content"]]}
            if isinstance(message, Mapping) and isinstance(message.get("content"), list) else message
            for message in messages]


def _text_only(messages: Any) -> list[dict[str, Any]]:
    """Each message's role and text: its string content, or its text parts joined."""
    counted = []
    for message in messages:
        content = get(message, "content")
        if isinstance(content, list):
            content = "\n".join(str(part.get("text", "")) for part in content
                                if isinstance(part, Mapping) and part.get("type") == "text")
        role = get(message, "role")
        counted.append({"role": str(role or "user"), "content": content if isinstance(content, str) else ""})
    return counted
