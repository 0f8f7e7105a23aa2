"""Small text pieces shared by the HTML report's parts: escaping, counts, and costs that may be unknown."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from ._spend import Spend
from ._tree import format_usd

UNKNOWN = "unknown"


def esc(value: Any) -> str:
    """Text from a trace file (span names, attributes, content) is untrusted: always escaped, quotes too."""
    return html.escape(str(value), quote=True)


def count(number: int) -> str:
    return f"{number:,}"


def plural(number: int, noun: str) -> str:
    return f"{count(number)} {noun}" + ("" if number == 1 else "s")


def cost_html(spend: Spend, *, element_id: str | None = None, compact: bool = False) -> str:
    """A group's cost. A price nobody knows is "unknown", never $0; when only some calls are unpriced the
    known amount is shown as a lower bound ("+ ?" when `compact`, else a note saying how many)."""
    id_attribute = f' id="{element_id}"' if element_id else ""
    if not spend.unpriced_calls:
        return f'<span class="amount"{id_attribute}>{esc(format_usd(spend.cost_usd))}</span>'
    note = plural(spend.unpriced_calls, "call") + " of unknown price"
    if spend.unpriced_calls >= spend.calls:
        amount = f'<span class="amount unknown"{id_attribute}>{UNKNOWN}</span>'
        return amount if compact else f'{amount} <small class="unpriced">{esc(note)}</small>'
    amount = f'<span class="amount"{id_attribute}>{esc(format_usd(spend.cost_usd))}</span>'
    if compact:
        return f'{amount} <span class="unknown" title="plus {esc(note)}">+ ?</span>'
    return f'{amount} <small class="unpriced">+ {esc(note)}</small>'


def utc_text(time_ns: int, *, milliseconds: bool = False) -> str:
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{moment.microsecond // 1000:03d}" if milliseconds else text
