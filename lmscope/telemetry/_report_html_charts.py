"""Horizontal bar charts in plain HTML and CSS: no script, no image, drawn by any browser from disk.

A row is a label, a track holding one or more coloured segments (stacked left to right) and the value
as text. Widths are percentages of the largest row, so the longest bar fills its track (less a margin
where the "some calls unpriced" marker can follow it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._report_html_format import esc


@dataclass(frozen=True, slots=True)
class Segment:
    css: str
    """The class that gives the segment its colour."""
    value: float
    title: str
    """Tooltip text (escaped when drawn)."""


@dataclass(frozen=True, slots=True)
class BarRow:
    label: str
    segments: tuple[Segment, ...]
    value_html: str
    """Markup for the value column, built from escaped text by the caller."""
    unpriced: bool = False
    """Some calls of this row have no price: a hatched marker follows the bar, so it does not pass for the whole."""


@dataclass(frozen=True, slots=True)
class LegendItem:
    css: str
    text: str


def bar_chart(chart_id: str, caption: str, rows: Sequence[BarRow], legend: Sequence[LegendItem] = (),
              empty_text: str = "No LM calls in this file.") -> str:
    largest = max((sum(segment.value for segment in row.segments) for row in rows), default=0.0)
    legend_html = "".join(
        f'<span class="legend-item"><span class="swatch {item.css}"></span>{esc(item.text)}</span>' for item in legend
    )
    body = "".join(_row(row, largest) for row in rows) if rows else f'<p class="empty">{esc(empty_text)}</p>'
    return (
        f'<figure class="chart" id="{chart_id}">'
        f'<figcaption>{esc(caption)}</figcaption>'
        + (f'<div class="legend">{legend_html}</div>' if legend else "")
        + f'<div class="bars">{body}</div></figure>'
    )


def _row(row: BarRow, largest: float) -> str:
    segments = "".join(
        f'<span class="bar {segment.css}" style="width:{_percent(segment.value, largest):.3f}%" '
        f'title="{esc(segment.title)}"></span>'
        for segment in row.segments
        if segment.value > 0
    )
    if row.unpriced:
        segments += '<span class="bar-unpriced" title="calls of unknown price"></span>'
    return (
        f'<div class="bar-row"><span class="bar-label" title="{esc(row.label)}">{esc(row.label)}</span>'
        f'<span class="bar-track"><span class="bar-fill">{segments}</span></span>'
        f'<span class="bar-value">{row.value_html}</span></div>'
    )


_MIN_VISIBLE_PERCENT = 0.5
"""A non-zero segment is never drawn thinner than this, or a tiny cost would look like none."""


def _percent(value: float, largest: float) -> float:
    if largest <= 0 or value <= 0:
        return 0.0
    return max(value / largest * 100, _MIN_VISIBLE_PERCENT)
