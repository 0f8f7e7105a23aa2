"""What captured content may go on a span: which sides, how long, scrubbed how. Resolved once at `instrument()`.

Every captured value (`input.value`, `output.value`, document text, `metadata`, exception messages) goes through
one `ContentPolicy` on its way to an attribute: binary described, credentials redacted (`_scrub.py`), then cut
to `max_chars` with a visible marker. Nothing here touches the program's objects or what the LM receives: the
policy sees lmscope's own JSON encoding of the content, a copy.

Who decides whether content is captured at all, first match wins:
1. `capture_content=` given to `instrument()`, or `LMSCOPE_CAPTURE_CONTENT`: both sides, whatever else is set;
2. `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (false / NO_CONTENT / EVENT_ONLY: off) for both sides,
   then `OPENINFERENCE_HIDE_INPUTS` / `OPENINFERENCE_HIDE_OUTPUTS` (true: that side off);
3. `capture_content` in `[tool.lmscope]`, then the default: captured.
Deployment variables outrank the app's pyproject.toml, as the standard OTEL_* variables do for every option.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._memo import BoundedMemo
from ._options import ARGUMENT, DEFAULT_MAX_CONTENT_CHARS, NO_EXPORT, Options, parse_hide_switch, resolve_options
from ._scrub import Scrubber
from ._scrub_match import ScrubCallback
from ._semconv import GEN_AI_REQUEST_MODEL as _GEN_AI_REQUEST_MODEL

HIDE_INPUTS: Final = "OPENINFERENCE_HIDE_INPUTS"
HIDE_OUTPUTS: Final = "OPENINFERENCE_HIDE_OUTPUTS"
TRUNCATION_MARK: Final = "…[truncated {} chars]"
"""Ends a cut value; `{}` is the number of characters dropped."""


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, the last of them the marker saying how many were dropped.

    A limit too small for the marker cuts without it."""
    if len(text) <= max_chars:
        return text
    kept = max_chars
    while True:  # dropping more can add a digit to the count in the marker: settles in two or three rounds
        fits = max_chars - len(TRUNCATION_MARK.format(len(text) - kept))
        if fits == kept or fits < 0:
            break
        kept = fits
    if fits < 0:
        return text[:max_chars]
    return text[:kept] + TRUNCATION_MARK.format(len(text) - kept)


@dataclass(frozen=True)
class ContentPolicy:
    """Which captured content goes on spans, and in what form. `ContentPolicy()` is lmscope's default."""

    capture_inputs: bool = True
    capture_outputs: bool = True
    max_chars: int = DEFAULT_MAX_CONTENT_CHARS
    scrubber: Scrubber = field(default_factory=Scrubber)
    _names: BoundedMemo[str, tuple[str, bool]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", BoundedMemo(self._scrubbed_name))

    @classmethod
    def capturing(cls, capture: bool) -> ContentPolicy:
        """The default policy with both sides captured or not (what `capture_content=True/False` means)."""
        return cls(capture_inputs=capture, capture_outputs=capture)

    def without_content(self) -> ContentPolicy:
        """This policy capturing neither inputs nor outputs (itself if it captures neither already)."""
        if not self.capture_inputs and not self.capture_outputs:
            return self
        return dataclasses.replace(self, capture_inputs=False, capture_outputs=False)

    def json(self, text: str, key: str) -> tuple[str, bool]:
        """(the value to record for JSON `text` under attribute `key`, whether a credential was redacted)."""
        scrubbed, redacted = self.scrubber.json(text, key)
        return truncate(scrubbed, self.max_chars), redacted

    def text(self, text: str, key: str, *, free_text: bool = False, max_chars: int | None = None) -> tuple[str, bool]:
        """Like `json` for a plain string; `free_text` for exception messages (see `Scrubber.text`)."""
        scrubbed, redacted = self.scrubber.text(text, key, free_text=free_text)
        limit = self.max_chars if max_chars is None else min(max_chars, self.max_chars)
        return truncate(scrubbed, limit), redacted

    def name(self, name: str) -> tuple[str, bool]:
        """(`name` as recorded, whether a credential was redacted) for a name that is not content but may hold one: a
        model (`openai/ft:gpt-4o:acme:sk-...`), a router's model group. Scrubbed by shape and cut, once per distinct
        name: on the path of every LM span, a repeat costs one dict lookup."""
        return self._names(name)

    def _scrubbed_name(self, name: str) -> tuple[str, bool]:
        return self.text(name, _GEN_AI_REQUEST_MODEL)  # the path a `scrub_callback` sees

    def strings(self, items: Sequence[str], key: str) -> tuple[tuple[str, ...], bool]:
        """(a list of strings as recorded, whether a credential was redacted): each scrubbed, then the list cut as a
        whole, so that written as JSON (`["a", "b"]`, escapes in the items aside) it is at most `max_chars` long.
        The item that would cross the limit is cut with the marker, which counts the characters of the items
        dropped after it too; the items after it are left out."""
        scrubbed: list[str] = []
        redacted = False
        for item in items:
            text, found = self.scrubber.text(item, key)
            scrubbed.append(text)
            redacted = redacted or found
        budget = self.max_chars
        for index, text in enumerate(scrubbed):
            budget -= len(text) + _JSON_ITEM_CHARS
            if budget < 0:
                room = max(len(text) + budget - _ESCAPED_MARK_EXTRA, 0)
                rest = "".join(scrubbed[index:])
                cut = truncate(rest, room) if room else ""
                return (*scrubbed[:index], cut) if cut else tuple(scrubbed[:index]), redacted
        return tuple(scrubbed), redacted


_JSON_ITEM_CHARS = 4
"""What one string of a list adds as JSON besides its text: two quotes and `, ` (the brackets stand in for the last
item's separator)."""
_ESCAPED_MARK_EXTRA = len(json.dumps("…")) - len('"…"')
"""What the marker's `…` adds in ASCII-only JSON (a backslash, `u2026`), the form many exporters and tools print."""


def capture_sides(capture_content: bool, source: str, environ: Mapping[str, str] | None = None) -> tuple[bool, bool]:
    """(capture inputs, capture outputs) from the resolved `capture_content` and where it came from.

    `source` is the options layer's label; an argument or LMSCOPE_CAPTURE_CONTENT wins over OpenInference's
    variables, anything lower (the OTel variable, pyproject.toml, the default) is narrowed by them."""
    if source in (ARGUMENT, "LMSCOPE_CAPTURE_CONTENT"):
        return capture_content, capture_content
    env = os.environ if environ is None else environ
    hide_inputs = parse_hide_switch(HIDE_INPUTS, env)
    hide_outputs = parse_hide_switch(HIDE_OUTPUTS, env)
    return capture_content and not hide_inputs, capture_content and not hide_outputs


def content_policy(*, capture_content: bool, capture_source: str, scrub: bool, scrub_patterns: tuple[str, ...],
                   scrub_callback: ScrubCallback | None, max_content_chars: int,
                   environ: Mapping[str, str] | None = None) -> ContentPolicy:
    """The policy `instrument()` hands to the instrumentors, from resolved (already validated) options."""
    inputs, outputs = capture_sides(capture_content, capture_source, environ)
    return ContentPolicy(capture_inputs=inputs, capture_outputs=outputs, max_chars=max_content_chars,
                         scrubber=Scrubber(secrets=scrub, patterns=scrub_patterns, callback=scrub_callback))


def policy_from_options(options: Options, scrub_callback: ScrubCallback | None = None) -> ContentPolicy:
    """The policy of resolved options (`resolve_options`), as `lmscope.instrument()` hands it to the instrumentors."""
    return content_policy(capture_content=options.capture_content,
                          capture_source=options.sources.get("capture_content", ""), scrub=options.scrub,
                          scrub_patterns=options.scrub_patterns, scrub_callback=scrub_callback,
                          max_content_chars=options.max_content_chars)


def resolved_content_policy(capture_content: bool | None = None) -> ContentPolicy:
    """The policy `lmscope.instrument(capture_content=...)` would use, from the same layers (argument, LMSCOPE_*,
    the OTel and OpenInference variables, `[tool.lmscope]`): what `DSPyInstrumentor().instrument()` uses when no
    policy is given, so `opentelemetry-instrument` runs honour the same privacy switches. Raises ConfigError on a
    bad value of lmscope's own, as `instrument()` does."""
    return policy_from_options(resolve_options(capture_content=capture_content, exporters=NO_EXPORT,
                                               metrics_exporters=NO_EXPORT))
