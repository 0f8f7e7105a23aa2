"""`lmscope report FILE --html OUT`: one page, opened from disk in a real browser, with nothing to fetch.

The trace file comes from a real run: the demo's RAG program (`lmscope._demo.build_program`) on real DSPy
against the stand-in LM server, written by lmscope's file exporter, with one unpriced model and one LM
that cannot be reached. Debian's headless Chromium then opens the page: the DOM it builds must show
`report.py`'s figures to the digit and every span of the file in its place, and its screenshot must hold
the bars, in their colours, with lengths in proportion to cost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from lmscope._cli import main
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter
from lmscope.telemetry._report import Report, render_report, summarize
from lmscope.telemetry._report_html import CONTENT_SECURITY_POLICY, MAX_CHART_ROWS, render_html
from lmscope.telemetry._report_html_style import PALETTE
from lmscope.telemetry._report_page import gather_page
from lmscope.telemetry._spend import Spend
from lmscope.telemetry._trace_file import SpanRecord, read_trace_file, records_from_spans
from lmscope.telemetry._tree import build_trees, error_text, format_usd, is_lm_call, span_facts

INJECTED = "<script>document.title='pwned'</script>"

_APP = textwrap.dedent("""
    import socket, sys
    import dspy
    import lmscope
    from lmscope._demo import QUESTIONS, build_program

    base_url, trace_file = sys.argv[1], sys.argv[2]
    lmscope.instrument(service_name="html-report-test", exporters=["file"], file_path=trace_file,
                       capture_content=True)
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=base_url, api_key="sk-test"))
    program = build_program()
    program(question=QUESTIONS[0])
    program(question=QUESTIONS[0])  # DSPy's memory cache: hits that saved money
    program(question=sys.argv[3] + " Which river flows through Paris?")  # markup in captured content
    examples = [dspy.Example(question=q).with_inputs("question") for q in QUESTIONS[1:]]
    program.batch(examples, num_threads=2, disable_progress_bar=True)
    with dspy.context(lm=dspy.LM("openai/lmscope-unpriced-model", api_base=base_url, api_key="sk-test")):
        program(question=QUESTIONS[2])  # no price anywhere: must read "unknown", never $0
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    try:
        with dspy.context(lm=dspy.LM("openai/gpt-4o", api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-test",
                                     num_retries=0)):
            program(question=QUESTIONS[3])
    except Exception as exc:
        print("failed as planned:", type(exc).__name__)
    lmscope.force_flush()
""")


@pytest.fixture(scope="module")
def demo_trace_file(lm_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html-report")
    trace_file = folder / "traces.jsonl"
    # A DSPy cache of its own: other tests ask the demo's questions too, and their disk hits would change the run.
    env = {**os.environ, "DSPY_CACHEDIR": str(folder / "dspy-cache")}
    done = subprocess.run([sys.executable, "-c", _APP, lm_server.base_url, str(trace_file), INJECTED],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed as planned" in done.stdout
    return trace_file


def _write_html(trace_file: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI entry point, which prints the text report as before and writes the page."""
    assert main(["report", str(trace_file), "--html", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.rstrip("\n") == render_report(summarize(read_trace_file(trace_file)))
    assert f"HTML report: {out}" in printed.err


def _cost_shown(spend: Spend) -> str:
    return "unknown" if spend.unpriced_calls and spend.unpriced_calls >= spend.calls else format_usd(spend.cost_usd)


# --- the page of a real run, in Chromium ----------------------------------------------------------------


def test_html_report_of_a_real_run_draws_totals_charts_and_trees(demo_trace_file: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 chromium: Any) -> None:
    page = tmp_path / "report.html"
    _write_html(demo_trace_file, page, capsys)
    records = read_trace_file(demo_trace_file)
    report = summarize(records)
    # The run holds what the page must get right: cache hits, unpriced calls next to priced ones, errors.
    # Unpriced: the unknown model's two calls; the call to the closed port got no answer, so it is no call at all.
    assert report.total.cache_hits == 2 and report.total.unpriced_calls == 2 and report.total.cost_usd > 0
    assert any(record.status_code == "ERROR" for record in records)

    dom = chromium.dom(page)
    assert dom.find("title").text() == "lmscope report: traces.jsonl"
    _assert_totals(dom, report)
    _assert_cost_charts(dom, report)
    _assert_tokens_chart(dom, report)
    _assert_trees(dom, records)
    _assert_loads_nothing(dom, page.read_text(encoding="utf-8"))
    # The question's markup is text in the captured content, not an element.
    assert not dom.find_all("script")
    assert any(INJECTED in cell.text() for cell in dom.find_all("td"))

    _assert_bars_drawn(chromium.screenshot(page), report, records)


def _assert_totals(dom: Any, report: Report) -> None:
    total = report.total
    assert dom.by_id("total-cost").text() == format_usd(total.cost_usd)  # $0.000123: to the cent and beyond
    assert "+ 2 calls of unknown price" in dom.find("dl", "totals").text()
    shown = {name: dom.by_id(f"total-{name}").text() for name in ("input", "output", "cached", "calls", "cache-hits")}
    assert shown == {"input": f"{total.input_tokens:,}", "output": f"{total.output_tokens:,}",
                     "cached": f"{total.cached_tokens:,}", "calls": str(total.calls),
                     "cache-hits": str(total.cache_hits)}
    assert dom.by_id("total-saved").text() == format_usd(total.saved_usd)


def _chart_rows(dom: Any, chart_id: str) -> list[Any]:
    return dom.by_id(chart_id).find_all(cls="bar-row")


def _assert_cost_charts(dom: Any, report: Report) -> None:
    for chart_id, groups in (("cost-by-module", report.by_module), ("cost-by-model", report.by_model)):
        rows = _chart_rows(dom, chart_id)
        shown = [(row.find(cls="bar-label").text(), row.find(cls="amount").text()) for row in rows]
        assert shown == [(key, _cost_shown(spend)) for key, spend in groups.items()]
        largest = max(spend.cost_usd for spend in groups.values())
        for row, spend in zip(rows, groups.values(), strict=True):
            bars = row.find_all(cls="bar")
            if spend.cost_usd:
                assert len(bars) == 1
                assert float(bars[0].attrs["style"].removeprefix("width:").rstrip("%")) == pytest.approx(
                    max(spend.cost_usd / largest * 100, 0.5), abs=0.001)
            else:
                assert bars == []
            assert bool(row.find_all(cls="bar-unpriced")) == bool(spend.unpriced_calls)
    # The unpriced model reads "unknown" and draws no bar.
    unpriced = next(row for row in _chart_rows(dom, "cost-by-model")
                    if row.find(cls="bar-label").text() == "lmscope-unpriced-model")
    assert unpriced.find(cls="amount").text() == "unknown" and "$" not in unpriced.find(cls="bar-value").text()


def _assert_tokens_chart(dom: Any, report: Report) -> None:
    shown = [(row.find(cls="bar-label").text(), row.find(cls="bar-value").text())
             for row in _chart_rows(dom, "tokens-by-model")]
    assert shown == [(model, f"{spend.input_tokens:,} in · {spend.cached_tokens:,} cached · "
                             f"{spend.output_tokens:,} out") for model, spend in report.by_model.items()]


def _dom_tree(items: Any) -> list[tuple[str, list[Any]]]:
    """(label, children) for each `<li>` of a `ul.spans`, as Chromium nested them."""
    nodes = []
    for item in items.elements():
        span = item.find("details", "span")
        row = next(child for child in span.elements() if child.tag == "summary")
        children = [child for child in span.elements() if child.tag == "ul"]
        nodes.append((row.find(cls="name").text(), _dom_tree(children[0]) if children else []))
    return nodes


def _file_tree(nodes: Any) -> list[tuple[str, list[Any]]]:
    return [(span_facts(node.record).label, _file_tree(node.children)) for node in nodes]


def _rows_by_span(dom: Any) -> dict[str, list[Any]]:
    """Each trace's span rows in document order, by trace id."""
    rows = {}
    for trace in dom.find_all("details", "trace"):
        trace_id = trace.find("code", "trace-id").text()
        rows[trace_id] = [summary for summary in trace.find_all("summary", "row")]
    return rows


def _assert_trees(dom: Any, records: list[SpanRecord]) -> None:
    trees = build_trees(records)
    traces = dom.find_all("details", "trace")
    assert [trace.find("code", "trace-id").text() for trace in traces] == [tree.trace_id for tree in trees]
    assert "open" in traces[0].attrs and not any("open" in trace.attrs for trace in traces[1:])
    # The same tree, span for span: every module path and LM span of the file, under the same parent.
    for trace, tree in zip(traces, trees, strict=True):
        assert _dom_tree(trace.find("ul", "spans")) == _file_tree(tree.roots)
    rows = _rows_by_span(dom)
    for tree in trees:
        for (node, _), row in zip(tree.walk(), rows[tree.trace_id], strict=True):
            record, cells = node.record, {cls: row.find(cls=cls).text() for cls in ("name", "cost", "in", "out")}
            assert cells["name"] == span_facts(record).label
            if record.attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM:
                cost = record.attributes.get(semconv.GEN_AI_USAGE_COST)
                # A call that got no answer (the closed port) billed nothing and is no call: no price to show.
                shown = (format_usd(cost) if cost is not None else "unknown") if is_lm_call(record.attributes) else ""
                assert cells["cost"] == shown
                tokens = [record.attributes.get(key) for key in (semconv.GEN_AI_USAGE_INPUT_TOKENS,
                                                                 semconv.GEN_AI_USAGE_OUTPUT_TOKENS)]
                assert [cells["in"], cells["out"]] == ["" if count is None else f"{count:,}" for count in tokens]
            badges = [badge.text() for badge in row.find_all(cls="badge")]
            if record.status_code == "ERROR":
                assert f"ERROR {error_text(record)}" in badges
            if record.attributes.get(semconv.CACHE_HIT):
                layer, saved = record.attributes[semconv.CACHE_LAYER], record.attributes[semconv.CACHE_SAVED_USD]
                assert f"cache: {layer} · saved {format_usd(saved)}" in badges


def _assert_loads_nothing(dom: Any, source: str) -> None:
    policies = [meta.attrs["content"] for meta in dom.find_all("meta")
                if meta.attrs.get("http-equiv", "").lower() == "content-security-policy"]
    assert policies == [CONTENT_SECURITY_POLICY]
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';") and "script-src" not in CONTENT_SECURITY_POLICY
    for element in dom.iter():
        assert element.tag not in {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
        assert not {"src", "href", "srcset", "action", "xlink:href"} & set(element.attrs), element
        assert not any(name.startswith("on") for name in element.attrs), element
    lowered = source.lower()
    assert "url(" not in lowered and "@import" not in lowered and "http://" not in lowered
    assert "https://" not in lowered


# --- pixels ----------------------------------------------------------------------------------------------


def _bands(image: Any, colour: str) -> list[int]:
    """For each horizontal band of rows holding `colour`, the longest run of it in one row (top to bottom)."""
    target = bytes.fromhex(colour.removeprefix("#"))
    width, height = image.size
    data, stride = image.tobytes(), width * 3
    bands: list[int] = []
    previous_row = -2
    for y in range(height):
        row = data[y * stride:(y + 1) * stride]
        if target not in row:  # a fast C search first; most rows do not hold the colour
            continue
        longest = run = 0
        for x in range(0, stride, 3):
            run = run + 1 if row[x:x + 3] == target else 0
            longest = max(longest, run)
        if not longest:
            continue
        if y != previous_row + 1:
            bands.append(0)
        bands[-1] = max(bands[-1], longest)
        previous_row = y
    return bands


def _assert_bars_drawn(image: Any, report: Report, records: list[SpanRecord]) -> None:
    # Cost bars: one per priced group, top to bottom in the report's order, lengths in proportion to cost.
    for colour, groups in ((PALETTE["cost-module"], report.by_module), (PALETTE["cost-model"], report.by_model)):
        priced = [spend.cost_usd for spend in groups.values() if spend.cost_usd > 0]
        bands = _bands(image, colour)
        assert len(bands) == len(priced), (colour, bands)
        assert bands[0] > 150  # the costliest fills its track
        for length, cost in zip(bands, priced, strict=True):
            assert length == pytest.approx(bands[0] * cost / priced[0], abs=2)
    # Token bars: a band per model that used tokens of that kind, plus the legend's swatch.
    with_input = [spend for spend in report.by_model.values() if spend.input_tokens > spend.cached_tokens]
    assert len(_bands(image, PALETTE["tokens-input"])) == len(with_input) + 1
    models = report.by_model.values()
    assert len(_bands(image, PALETTE["tokens-output"])) == sum(spend.output_tokens > 0 for spend in models) + 1
    assert len(_bands(image, PALETTE["tokens-cached"])) == sum(spend.cached_tokens > 0 for spend in models) + 1
    # The first trace is open: its LM spans' timeline bars are on screen, one band each.
    first = build_trees(records)[0]
    lm_spans = [node for node, _ in first.walk()
                if node.record.attributes.get(semconv.SPAN_KIND) == semconv.KIND_LLM]
    assert len(_bands(image, PALETTE["kind-llm"])) == len(lm_spans) == 2


# --- untrusted text, unknown prices, large files (no browser needed for the figures, one for escaping) --------


def _hostile_spans(path: Path) -> None:
    """A file from another producer: markup in every string a span carries."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"svc {INJECTED}"}))
    exporter = OtlpJsonFileExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hostile")
    root = tracer.start_span(f"root {INJECTED}", attributes={
        semconv.SPAN_KIND: semconv.KIND_CHAIN, semconv.MODULE_PATH: f"agent.{INJECTED}",
        semconv.LM_CALLS: 1, semconv.USAGE_INPUT_TOKENS: 5, semconv.USAGE_OUTPUT_TOKENS: 1,
        semconv.COST_TOTAL_USD: 0.0, semconv.COST_UNKNOWN: True,
        f"key {INJECTED}": f"value \"quoted\" {INJECTED} <img src=x onerror=alert(1)>",
    })
    call = tracer.start_span(f"chat {INJECTED}", set_span_in_context(root), attributes={
        semconv.SPAN_KIND: semconv.KIND_LLM, semconv.GEN_AI_REQUEST_MODEL: f"model-{INJECTED}",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 5, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1, semconv.COST_UNKNOWN: True,
        semconv.CACHE_HIT: False,  # an answered call, as lmscope writes it: the report counts it
    })
    call.set_status(Status(StatusCode.ERROR, f"Boom: {INJECTED}"))
    call.end()
    root.end()
    provider.shutdown()


def test_markup_in_spans_is_shown_as_text_and_unknown_price_never_as_zero(tmp_path: Path, chromium: Any,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    trace_file = tmp_path / "<b onmouseover=alert(1)>elsewhere.jsonl"
    _hostile_spans(trace_file)
    page = tmp_path / "hostile.html"
    _write_html(trace_file, page, capsys)

    dom = chromium.dom(page)
    allowed = {"#document", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "small", "p",
               "dl", "div", "dt", "dd", "span", "main", "section", "figure", "figcaption", "details", "summary",
               "ul", "li", "table", "tbody", "tr", "th", "td", "code", "footer"}
    assert {element.tag for element in dom.iter()} <= allowed
    assert not any(name.startswith("on") for element in dom.iter() for name in element.attrs)
    assert dom.find("title").text() == "lmscope report: <b onmouseover=alert(1)>elsewhere.jsonl"
    assert dom.find("h1").text().startswith("<b onmouseover=alert(1)>elsewhere.jsonl")
    names = [row.find(cls="name").text() for row in dom.find_all("summary", "row")]
    assert names == [f"agent.{INJECTED}", f"chat {INJECTED}"]
    assert dom.by_id("cost-by-model").find(cls="bar-label").text() == f"model-{INJECTED}"
    assert dom.by_id("cost-by-model").find(cls="bar-label").attrs["title"] == f"model-{INJECTED}"
    cells = {row.find("th").text(): row.find("td").text() for row in dom.find_all("tr")}
    assert cells[f"key {INJECTED}"] == f"value \"quoted\" {INJECTED} <img src=x onerror=alert(1)>"
    assert cells["status"] == f"ERROR Boom: {INJECTED}"
    assert f"svc {INJECTED}" in dom.find("p", "sub").text()
    # Nothing priced: every cost reads "unknown" (the module's roll-up of 0.0 included), no "$0" anywhere.
    assert dom.by_id("total-cost").text() == "unknown"
    assert [row.find(cls="cost").text() for row in dom.find_all("summary", "row")] == ["unknown", "unknown"]
    assert dom.by_id("cost-by-module").find(cls="amount").text() == "unknown"
    assert "$0.000000" not in dom.by_id("cost-by-module").text() + dom.by_id("cost-by-model").text()


def test_many_groups_end_in_one_summed_row(dom_of: Callable[[str], Any]) -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("many")
    modules = 20
    for index in range(modules):  # costs 20/64 down to 1/64: exact binary fractions
        with tracer.start_as_current_span(f"m{index}", attributes={semconv.MODULE_PATH: f"m{index:02d}"}):
            tracer.start_span(f"chat model-{index:02d}", attributes={
                semconv.SPAN_KIND: semconv.KIND_LLM, semconv.GEN_AI_REQUEST_MODEL: f"model-{index:02d}",
                semconv.GEN_AI_USAGE_COST: (modules - index) / 64,
                semconv.CACHE_HIT: False}).end()  # an lmscope key: lmscope's LM span, which the report counts
    dom = dom_of(render_html(gather_page(records_from_spans(memory.get_finished_spans()), "many.jsonl")))
    for chart_id in ("cost-by-module", "cost-by-model", "tokens-by-model"):
        rows = dom.by_id(chart_id).find_all(cls="bar-row")
        assert len(rows) == MAX_CHART_ROWS
        assert rows[-1].find(cls="bar-label").text() == f"({modules - MAX_CHART_ROWS + 1} others)"
    last = dom.by_id("cost-by-module").find_all(cls="bar-row")[-1]
    assert last.find(cls="amount").text() == format_usd(sum(range(1, modules - MAX_CHART_ROWS + 2)) / 64)
    assert "6 calls" in last.find(cls="bar-value").text()
    assert dom.by_id("total-cost").text() == format_usd(sum(range(1, modules + 1)) / 64)
    # Trees are drawn for the first traces only; the figures above still cover all of them.
    records = records_from_spans(memory.get_finished_spans())
    dom = dom_of(render_html(gather_page(records, "many.jsonl", max_traces=5)))
    assert len(dom.find_all("details", "trace")) == 5
    assert "15 more traces not drawn" in dom.find("section", "traces").text()
    assert dom.by_id("total-calls").text() == "20"


def test_a_very_deep_trace_and_an_empty_file_still_give_a_page(tmp_path: Path, dom_of: Callable[[str], Any]) -> None:
    records = [SpanRecord(trace_id="1" * 32, span_id=f"{depth + 1:016x}",
                          parent_span_id=f"{depth:016x}" if depth else None, name=f"level{depth}", kind="INTERNAL",
                          start_ns=depth, end_ns=10_000 - depth) for depth in range(3000)]
    html = render_html(gather_page(records, "deep.jsonl"))  # deeper than Python's recursion limit
    # Drawn to MAX_DRAWN_DEPTH levels below the root (browsers stop nesting a few hundred deep), then a count.
    assert html.count('<details class="span') == html.count("<li>") == 65
    assert "… 2,935 more spans deeper than 64 levels not drawn" in html

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    dom = dom_of(render_html(gather_page(read_trace_file(empty), empty.name)))
    assert dom.by_id("total-cost").text() == "$0.000000" and dom.by_id("total-calls").text() == "0"
    assert "No traces in this file." in dom.find("section", "traces").text()
    assert all("No LM calls in this file." in dom.by_id(chart).text()
               for chart in ("cost-by-module", "cost-by-model", "tokens-by-model"))


def test_unwritable_html_path_is_one_clear_line(demo_trace_file: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "out.html"
    assert main(["report", str(demo_trace_file), "--html", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmscope report: ") and str(target) in err and "\n" not in err
    assert not list(tmp_path.iterdir())
