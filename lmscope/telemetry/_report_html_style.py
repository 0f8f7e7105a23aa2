"""The HTML report's stylesheet, inlined into the page (a page that loads nothing cannot load a stylesheet).

Colours are named once in PALETTE: the CSS below uses them, and the rendering test looks for exactly
these colours in a screenshot to prove the bars were drawn.
"""

from __future__ import annotations

from typing import Final

PALETTE: Final = {
    "cost-module": "#2563eb",
    "cost-model": "#7c3aed",
    "cost-phase": "#16a34a",
    "trial-score": "#db2777",
    "tokens-input": "#0d9488",
    "tokens-cached": "#5eead4",
    "tokens-output": "#f59e0b",
    "kind-llm": "#ea580c",
    "kind-module": "#64748b",
    "kind-retriever": "#0891b2",
    "kind-tool": "#a16207",
    "kind-other": "#94a3b8",
    "kind-error": "#dc2626",
}

_COLOURS = "\n".join(f".{name} {{ background: {colour}; }}" for name, colour in PALETTE.items())

STYLE: Final = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --soft: #f8fafc; --error: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #f1f5f9; }
header, main { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 22px; margin: 0; word-break: break-all; }
h1 small { color: var(--muted); font-weight: 400; font-size: 14px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: var(--muted); margin: 4px 0 14px; }
.totals { display: flex; flex-wrap: wrap; gap: 10px; margin: 0; }
.totals > div { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px;
  min-width: 120px; }
.totals dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.totals dd { margin: 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.totals dd small { display: block; font-size: 12px; font-weight: 400; color: var(--muted); }
.unknown, .unpriced { color: #b45309; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 14px; margin-top: 18px; }
.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.chart figcaption { font-weight: 600; margin-bottom: 8px; }
.legend { display: flex; gap: 14px; color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
.bar-row { display: grid; grid-template-columns: minmax(0, 1fr) auto; grid-template-areas: "label value" "track track";
           column-gap: 10px; row-gap: 2px; margin-bottom: 8px; }
.bar-label { grid-area: label; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-family: ui-monospace, monospace;
             font-size: 12.5px; }
.bar-track { grid-area: track; display: block; height: 16px; background: var(--soft); border-radius: 3px;
  overflow: hidden; }
.bar-fill { display: flex; width: calc(100% - 12px); height: 100%; }
.bar { display: block; flex: none; height: 100%; }
.bar-unpriced { display: block; flex: none; width: 10px; height: 100%;
                background: repeating-linear-gradient(45deg, #d97706 0 3px, #fde68a 3px 6px); }
.bar-value { grid-area: value; font-variant-numeric: tabular-nums; font-size: 12.5px; white-space: nowrap;
  text-align: right; }
.bar-value small { color: var(--muted); }
.empty { color: var(--muted); margin: 4px 0; }
.note { color: var(--muted); }
details.trace { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; }
details.trace > summary { cursor: pointer; padding: 8px 12px; display: flex; flex-wrap: wrap; gap: 8px;
                          align-items: baseline; }
details.trace[open] > summary { border-bottom: 1px solid var(--line); }
.trace-number { color: var(--muted); }
.trace-name { font-weight: 600; font-family: ui-monospace, monospace; }
.trace-meta { color: var(--muted); font-variant-numeric: tabular-nums; }
.trace-id { margin-left: auto; color: var(--muted); font-size: 11px; }
.tree { padding: 4px 12px 10px; overflow-x: auto; }
ul.spans { list-style: none; margin: 0; padding: 0 0 0 18px; }
.tree > ul.spans { padding-left: 0; }
.row { display: flex; align-items: center; gap: 8px; min-height: 24px; min-width: 880px; list-style: none;
       cursor: pointer; border-radius: 4px; }
.row::-webkit-details-marker { display: none; }
summary.row::before { content: "\\25B8"; color: var(--muted); width: 10px; flex: none; }
details[open] > summary.row::before { content: "\\25BE"; }
details.leaf > summary.row::before { content: "\\00B7"; }
summary.row:hover { background: var(--soft); }
.row.cols { color: var(--muted); font-size: 11px; text-transform: uppercase; cursor: default; padding-left: 18px; }
.row .name { font-family: ui-monospace, monospace; white-space: nowrap; }
.row .notes { flex: 1; display: flex; gap: 6px; min-width: 0; overflow: hidden; white-space: nowrap; }
.row .timeline { flex: none; width: 180px; height: 10px; position: relative; background: var(--soft);
  border-radius: 2px; }
.row.cols .timeline { background: none; height: auto; }
.tl { position: absolute; top: 0; height: 100%; border-radius: 2px; }
.row .num { flex: none; width: 72px; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.row .num.cost { width: 116px; }
.kind { font-size: 10.5px; color: var(--muted); border: 1px solid var(--line); border-radius: 3px; padding: 0 4px; }
.badge { font-size: 11.5px; border-radius: 3px; padding: 0 5px; background: var(--soft); border: 1px solid var(--line);
         overflow: hidden; text-overflow: ellipsis; }
.badge.cache { background: #dcfce7; border-color: #86efac; color: #166534; }
.badge.unpriced { background: #fef3c7; border-color: #fcd34d; }
.badge.error { background: #fee2e2; border-color: #fca5a5; color: var(--error); }
details.attrs > summary { font-size: 11px; line-height: 15px; color: var(--muted); cursor: pointer; margin-left: 18px; }
table.attributes { border-collapse: collapse; margin: 2px 0 6px 18px; font-size: 12px; max-width: 1100px; }
table.attributes th { text-align: left; font-weight: 500; color: var(--muted); padding: 1px 10px 1px 0;
                      vertical-align: top; white-space: nowrap; font-family: ui-monospace, monospace; }
table.attributes td { padding: 1px 0; white-space: pre-wrap; word-break: break-word;
                      font-family: ui-monospace, monospace; }
.optimization { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.optimization > h2 { flex-basis: 100%; }
.compile-facts { color: var(--muted); margin: 0 0 6px; }
table.evaluations { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
table.evaluations caption { text-align: left; font-weight: 600; padding: 6px 0; }
table.evaluations th, table.evaluations td { padding: 4px 10px; border-bottom: 1px solid var(--line); }
table.evaluations td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { max-width: 1400px; margin: 20px auto; padding: 0 24px; color: var(--muted); font-size: 12px; }
""" + _COLOURS
