"""The HTML report's optimization section: each compile's trial scores as a small inline SVG chart next to what the
compile cost, each evaluation's score and cost, and spend by phase. No script: the chart is markup."""

from __future__ import annotations

from ._report import Report, score_text
from ._report_html_charts import BarRow, Segment, bar_chart
from ._report_html_format import cost_html, count, esc, plural
from ._report_html_style import PALETTE
from ._report_optimization import NO_PHASE, CompileSummary
from ._tree import format_usd

CHART_WIDTH = 360
CHART_HEIGHT = 120
_PAD = 14
"""Room around the plot for the points' circles and the scale's labels."""


def optimization_html(report: Report) -> str:
    """The section, or nothing for a file with no compile, no evaluation and no phase."""
    parts = []
    if any(phase != NO_PHASE for phase in report.by_phase):
        parts.append(_phase_chart(report))
    parts.extend(_compile_html(number, compile_) for number, compile_ in enumerate(report.compiles, start=1))
    if report.evaluations:
        parts.append(_evaluations_table(report))
    if not parts:
        return ""
    return '<section class="optimization" id="optimization"><h2>Optimization and evaluation</h2>' \
        + "".join(parts) + "</section>"


def _phase_chart(report: Report) -> str:
    rows = [BarRow(label=phase, segments=(Segment("cost-phase", spend.cost_usd, format_usd(spend.cost_usd)),),
                   value_html=cost_html(spend, compact=True)
                   + esc(f" · {count(spend.input_tokens)} in · {count(spend.output_tokens)} out"),
                   unpriced=spend.unpriced_calls > 0)
            for phase, spend in report.by_phase.items()]
    return bar_chart("cost-by-phase", "Spend by phase", rows)


def _compile_html(number: int, compile_: CompileSummary) -> str:
    spend = compile_.spend
    facts = (f"{plural(len(compile_.trials), 'trial')} · best score "
             f"{score_text(compile_.best_score)} · {plural(spend.calls, 'LM call')} · "
             f"{count(spend.input_tokens)} in · {count(spend.output_tokens)} out · "
             f"{plural(spend.cache_hits, 'cache hit')}")
    return (f'<figure class="chart compile" id="compile-{number}">'
            f'<figcaption>{esc(compile_.optimizer)} <span class="compile-cost">{cost_html(spend)}</span></figcaption>'
            f'<p class="compile-facts">{esc(facts)}</p>{trial_chart(compile_.trials)}</figure>')


def trial_chart(trials: list[tuple[int, float | None]]) -> str:
    """Each trial's score in trial order, as points joined by a line; the scale's ends labelled."""
    scored = [(index, score) for index, score in trials if score is not None]
    if not scored:
        return '<p class="empty">No trial scores recorded.</p>'
    low, high = min(0.0, *(s for _, s in scored)), max(s for _, s in scored)
    span = high - low or 1.0
    step = (CHART_WIDTH - 3 * _PAD) / max(len(trials) - 1, 1)
    colour = PALETTE["trial-score"]
    points = []
    for position, (index, score) in enumerate(trials):
        if score is None:
            continue
        x = 2 * _PAD + position * step
        y = _PAD + (high - score) / span * (CHART_HEIGHT - 2 * _PAD)
        points.append((x, y, index, score))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
    circles = "".join(
        f'<circle class="trial" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}" data-trial="{index}" '
        f'data-score="{score_text(score)}"><title>trial {index}: {esc(score_text(score))}</title></circle>'
        for x, y, index, score in points)
    return (f'<svg class="trials" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
            f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="score of each trial, in order">'
            f'<line x1="{2 * _PAD}" y1="{CHART_HEIGHT - _PAD}" x2="{CHART_WIDTH - _PAD}" y2="{CHART_HEIGHT - _PAD}" '
            f'stroke="#cbd5e1"/>'
            f'<text x="2" y="{_PAD + 4}" font-size="10" fill="#64748b">{esc(score_text(high))}</text>'
            f'<text x="2" y="{CHART_HEIGHT - _PAD + 4}" font-size="10" fill="#64748b">{esc(score_text(low))}</text>'
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>{circles}</svg>')


def _evaluations_table(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{esc(e.metric or '(no metric)')}</td><td>{esc(e.phase)}</td>"
        f'<td class="num">{esc(_or_dash(e.examples))}</td><td class="num">{esc(_or_dash(e.errors))}</td>'
        f'<td class="num score">{esc(score_text(e.score))}</td><td class="num">{cost_html(e.spend)}</td>'
        f'<td class="num">{esc(count(e.spend.calls))}</td></tr>'
        for e in report.evaluations)
    return ('<table class="evaluations" id="evaluations"><caption>Evaluations</caption><thead><tr><th>metric</th>'
            '<th>phase</th><th>examples</th><th>errors</th><th>score</th><th>cost</th><th>LM calls</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def _or_dash(number: int | None) -> str:
    return "-" if number is None else count(number)
