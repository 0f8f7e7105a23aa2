"""Offline checks of the Grafana dashboards in dashboards/.

Grafana itself cannot run here (no Debian package, no server on the package indexes), so nothing renders a
dashboard. Grafana's dashboard JSON Schema is not shipped in any package either (the foundation SDK's wheel
and npm package, and @grafana/schema, carry code, no schema file), so instead of a schema: the Grafana
Foundation SDK's typed models read every dashboard back and write it out unchanged (with the SDK's panel and
query plugins registered, an unknown key anywhere is dropped and the round trip fails), plus structural checks
of what Grafana relies on: grid, ids, data source uids, template variables. Every query, with Grafana's macros
and variables filled in, passes `promtool check rules`. tests/dashboards/test_dashboards_prometheus.py runs
the same queries against a real Prometheus.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
# Values Grafana would put in for its macros: any valid durations serve for a syntax check.
MACROS = {"__range": "1h", "__interval": "1m", "__rate_interval": "4m"}
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\{([^{}]*)\}")


def _build_module(folder):
    spec = importlib.util.spec_from_file_location("lmscope_dashboards_build", folder / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_committed_json_is_what_build_py_writes(grafana):
    if sys.version_info < (3, 11):
        pytest.skip("grafana-foundation-sdk needs Python 3.11; the dev extra installs it from there on")
    rendered = _build_module(grafana.folder).render()
    committed = {path.name: path.read_text() for path in grafana.folder.glob("*.json")}
    assert set(committed) == set(rendered), "dashboards/ holds JSON that build.py does not write"
    for name, text in rendered.items():
        assert committed[name] == text, f"dashboards/{name} is stale: run `python dashboards/build.py`"


def _sdk_round_trip(board: dict) -> dict:
    if sys.version_info < (3, 11):
        pytest.skip("grafana-foundation-sdk needs Python 3.11; the dev extra installs it from there on")
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()  # typed panel options and Prometheus queries instead of plain dicts
    return json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))


def test_the_sdk_models_read_every_dashboard_back_unchanged(dashboards):
    for name, board in dashboards.items():
        assert _sdk_round_trip(board) == board, name
    # The check can fail: a key the models do not know, at any depth, is lost on the way.
    panel_index = next(i for i, panel in enumerate(dashboards["cost.json"]["panels"]) if panel["type"] == "timeseries")
    for path in (("templating", "list", 0), ("panels", panel_index, "options"),
                 ("panels", panel_index, "fieldConfig", "defaults", "custom"), ("panels", panel_index, "targets", 0)):
        broken = copy.deepcopy(dashboards["cost.json"])
        node = broken
        for step in path:
            node = node[step]
        node["typo"] = 1
        assert _sdk_round_trip(broken) != broken, path


def test_dashboards_have_unique_uids_titles_and_the_lmscope_tag(dashboards):
    boards = dashboards.values()
    assert len({board["uid"] for board in boards}) == len({board["title"] for board in boards}) == len(dashboards)
    for name, board in dashboards.items():
        assert re.fullmatch(r"[a-z0-9-]{8,40}", board["uid"]), name
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39, name
        assert "lmscope" in board["tags"] and board["title"].startswith("lmscope / "), name


def test_panels_tile_the_24_column_grid_with_unique_ids(dashboards):
    for name, board in dashboards.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert all(isinstance(i, int) and i > 0 for i in ids) and len(set(ids)) == len(ids), name
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert all(isinstance(grid[k], int) for k in "xywh"), (name, panel["title"])
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & taken, f"{name}: {panel['title']} overlaps another panel"
            taken |= cells
            assert panel["title"] and panel["description"], (name, panel["id"])


def test_every_panel_and_every_query_reads_the_prometheus_datasource(dashboards, grafana):
    for name, board in dashboards.items():
        for panel in board["panels"]:
            assert panel["datasource"] == PROMETHEUS, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            ref_ids = [query["refId"] for query in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), (name, panel["title"])
        for panel, query in grafana.queries(board):
            assert query["datasource"] == PROMETHEUS and query["expr"].strip(), (name, panel["title"])
            # Stat and bar-gauge panels show one figure for the whole time range; time series draw a range.
            assert query["instant"] is (panel["type"] != "timeseries"), (name, panel["title"])
        for variable in board["templating"]["list"]:
            assert variable["datasource"] == PROMETHEUS, (name, variable["name"])


def test_service_and_model_variables_are_defined_and_every_variable_used_is(dashboards, grafana):
    for name, board in dashboards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"service", "model"}, name
        for variable in variables.values():
            assert variable["type"] == "query" and variable["includeAll"] and variable["multi"], variable["name"]
            assert variable["allValue"] == ".*"  # "All" must also match series without the label
        assert grafana.label_values(variables["service"]["query"])[1] == "service_name"
        assert grafana.label_values(variables["model"]["query"])[1] == "gen_ai_request_model"
        used = grafana.variables_used(json.dumps(board))
        assert used - {"__all"} - set(MACROS) == set(variables), name  # all defined ones used, no others


def _selectors(expr: str) -> list[tuple[str, str]]:
    return SELECTOR.findall(expr)


def test_queries_read_lmscope_series_of_the_chosen_service_and_never_filter_on_job(dashboards, grafana):
    """In the compose stack the same series arrive with job = the service name (collector) or job="lmscope"."""
    for board in dashboards.values():
        for panel, query in grafana.queries(board):
            selectors = _selectors(query["expr"])
            assert selectors, query["expr"]
            for metric, matchers in selectors:
                assert 'otel_scope_name="lmscope"' in matchers and 'service_name=~"$service"' in matchers, metric
                assert not re.search(r"\bjob\s*[=!]", matchers), metric
                lm_metric = metric.startswith(("gen_ai_", "lmscope_cache_", "lmscope_usage_"))
                assert ('gen_ai_request_model=~"$model"' in matchers) is lm_metric, (panel["title"], metric)
            assert not re.search(r"\bjob\b", query["expr"]), query["expr"]


def _promtool_check(exprs: list[str], tmp_path) -> subprocess.CompletedProcess:
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"lmscope:dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return subprocess.run([shutil.which("promtool"), "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.prometheus  # needs Debian's prometheus package (promtool), like the tests that start its server
def test_promtool_accepts_every_query(dashboards, grafana, tmp_path):
    assert shutil.which("promtool"), "promtool (Debian's prometheus package) is installed by .ci/test.sh"
    values = {**MACROS, "service": ".*", "model": ".*"}
    exprs = [grafana.interpolate(query["expr"], values)
             for board in dashboards.values() for _, query in grafana.queries(board)]
    # A variable's selector is PromQL too (Grafana sends it as match[] to the label values API).
    exprs += [grafana.interpolate(grafana.label_values(v["query"])[0], values)
              for board in dashboards.values() for v in board["templating"]["list"]]
    checked = _promtool_check(exprs, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout
    # The same check rejects a broken query.
    broken = _promtool_check(["sum(rate(gen_ai_usage_cost_USD_total[5m])"], tmp_path)
    assert broken.returncode != 0 and "unclosed left parenthesis" in broken.stdout + broken.stderr


def test_the_compose_collector_labels_its_series_with_service_name(grafana):
    """Metrics sent with metrics_exporters=["otlp"] reach Prometheus through the collector, which by default
    keeps resource attributes off the series (service.name only becomes `job`): the service variable would
    offer nothing and "Spend by service" would have no names."""
    config = yaml.safe_load((grafana.folder.parent / "deploy/otel-collector/config.yaml").read_text())
    assert config["exporters"]["prometheus"]["resource_to_telemetry_conversion"] == {"enabled": True}
