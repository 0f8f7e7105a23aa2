"""`lmscope report FILE --html OUT`: one self-contained page with the report's totals, charts and trees.

The page loads nothing: no script at all, styles inline, charts as CSS bars, trees as `<details>`. Its
Content-Security-Policy forbids every fetch and every script, so even a span attribute that slipped past
escaping could not run or phone home. Markup only: `report_page.gather_page` gathers what is shown.
"""

from __future__ import annotations

from ._report_html_charts import BarRow, LegendItem, Segment, bar_chart
from ._report_html_format import cost_html, count, esc, plural, utc_text
from ._report_html_optimization import optimization_html
from ._report_html_style import STYLE
from ._report_html_trees import trace_html
from ._report_page import Page
from ._spend import Spend
from ._tree import format_usd

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                           "form-action 'none'")
MAX_CHART_ROWS = 15
"""Beyond this many modules or models, the cheapest are summed into one "N others" row."""


def render_html(page: Page) -> str:
    report = page.report
    traces = "".join(trace_html(trace, open_=trace.number == 1) for trace in page.traces)
    if page.hidden_traces:
        traces += (f'<p class="note">{plural(page.hidden_traces, "more trace")} not drawn; '
                   f"the totals and charts above include them.</p>")
    if not page.traces:
        traces = '<p class="empty">No traces in this file.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lmscope report: {esc(page.source)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{esc(page.source)} <small>lmscope report</small></h1>
<p class="sub">{_subtitle(page)}</p>
{_totals(report.total)}
</header>
<main>
<section class="charts">
{_cost_chart("cost-by-module", "Cost by module path", report.by_module, "cost-module")}
{_cost_chart("cost-by-model", "Cost by model", report.by_model, "cost-model")}
{_tokens_chart(report.by_model)}
</section>
{optimization_html(report)}
<section class="traces">
<h2>Traces</h2>
{traces}
</section>
</main>
<footer>Costs are summed from LM spans only (module spans carry roll-ups of the same calls).
Calls whose price is unknown are counted as unknown, never as $0.</footer>
</body>
</html>
"""


def _subtitle(page: Page) -> str:
    parts = [plural(page.report.total.calls, "LM call"), plural(page.report.traces, "trace"),
             plural(page.spans, "span")]
    if page.services:
        parts.append(("service " if len(page.services) == 1 else "services ") + ", ".join(page.services))
    if page.start_ns is not None and page.end_ns is not None:
        parts.append(f"{utc_text(page.start_ns)} to {utc_text(page.end_ns)} UTC")
    return esc(" · ".join(parts))


def _totals(total: Spend) -> str:
    cards = [
        ("Cost", cost_html(total, element_id="total-cost")),
        ("Tokens in", _figure("total-input", count(total.input_tokens))),
        ("Tokens out", _figure("total-output", count(total.output_tokens))),
        ("Cached tokens", _figure("total-cached", count(total.cached_tokens))),
        ("LM calls", _figure("total-calls", count(total.calls))),
        ("Cache hits", _figure("total-cache-hits", count(total.cache_hits))),
        ("Saved by cache", _figure("total-saved", format_usd(total.saved_usd))),
    ]
    return '<dl class="totals">' + "".join(f"<div><dt>{title}</dt><dd>{value}</dd></div>" for title, value in cards) \
        + "</dl>"


def _figure(element_id: str, text: str) -> str:
    return f'<span id="{element_id}">{esc(text)}</span>'


def _cost_chart(chart_id: str, caption: str, groups: dict[str, Spend], css: str) -> str:
    rows = [
        BarRow(
            label=key,
            segments=(Segment(css, spend.cost_usd, format_usd(spend.cost_usd)),),
            value_html=cost_html(spend, compact=True) + f" <small>{_calls_text(spend)}</small>",
            unpriced=spend.unpriced_calls > 0,
        )
        for key, spend in _top(groups)
    ]
    return bar_chart(chart_id, caption, rows)


def _calls_text(spend: Spend) -> str:
    text = plural(spend.calls, "call")
    return esc(text + (f", {count(spend.unpriced_calls)} unpriced" if spend.unpriced_calls else ""))


def _tokens_chart(groups: dict[str, Spend]) -> str:
    rows = []
    for key, spend in _top(groups):
        cached = min(spend.cached_tokens, spend.input_tokens)  # cached prompt tokens are part of the input
        uncached = spend.input_tokens - cached
        rows.append(BarRow(
            label=key,
            segments=(
                Segment("tokens-input", uncached, f"{count(uncached)} input, not cached"),
                Segment("tokens-cached", cached, f"{count(cached)} input, cached"),
                Segment("tokens-output", spend.output_tokens, f"{count(spend.output_tokens)} output"),
            ),
            value_html=esc(f"{count(spend.input_tokens)} in · {count(spend.cached_tokens)} cached · "
                           f"{count(spend.output_tokens)} out"),
        ))
    legend = (LegendItem("tokens-input", "input"), LegendItem("tokens-cached", "cached input"),
              LegendItem("tokens-output", "output"))
    return bar_chart("tokens-by-model", "Tokens by model", rows, legend)


def _top(groups: dict[str, Spend]) -> list[tuple[str, Spend]]:
    """(label, spend) of the costliest groups (already ranked), and the rest summed into one row.

    A list, not a dict: a group could be named like the "others" row (a model called "(3 others)")."""
    rows = list(groups.items())
    if len(rows) <= MAX_CHART_ROWS:
        return rows
    head, tail = rows[: MAX_CHART_ROWS - 1], rows[MAX_CHART_ROWS - 1:]
    others = Spend()
    for _, spend in tail:
        others.add(spend)
    return [*head, (f"({len(tail)} others)", others)]
