"""The dashboards of dashboards/ as the tests read them: JSON files, their panels' queries, Grafana's variables.

Test modules run with --import-mode=importlib and cannot import this file: they get its helpers through the
`grafana` fixture.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest
from otlp_servers import free_port  # loaded by tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FOLDER = ROOT / "dashboards"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]")
"""The three ways Grafana interpolates a variable: $name, ${name} or ${name:format}, [[name]]."""
_LABEL_VALUES = re.compile(r"^label_values\((\{.*\}),\s*(\w+)\)$")
"""A query variable's `label_values(selector, label)`: Grafana asks Prometheus for that label's values."""


def _queries(board: Mapping) -> Iterator[tuple[dict, dict]]:
    """(panel, target) for every query of every panel, row panels' children included."""
    for panel in board["panels"]:
        for child in [panel, *panel.get("panels", [])]:
            for query in child.get("targets", []):
                yield child, query


def _variables_used(text: str) -> set[str]:
    return {next(group for group in m.groups() if group) for m in _VARIABLE.finditer(text)}


def _interpolate(text: str, values: Mapping[str, str]) -> str:
    """`text` with every variable Grafana would interpolate replaced from `values` (KeyError if one is missing)."""
    return _VARIABLE.sub(lambda m: values[next(group for group in m.groups() if group)], text)


def _label_values(query: str) -> tuple[str, str]:
    """(selector, label) of a `label_values(selector, label)` variable query."""
    found = _LABEL_VALUES.match(query)
    assert found, f"not a label_values(selector, label) query: {query}"
    return found.group(1), found.group(2)


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict]:
    boards = {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_FOLDER.glob("*.json"))}
    assert set(boards) == {"cost.json", "cache.json", "latency.json"}
    return boards


@pytest.fixture(scope="session")
def grafana() -> SimpleNamespace:
    return SimpleNamespace(folder=DASHBOARD_FOLDER, queries=_queries, variables_used=_variables_used,
                           interpolate=_interpolate, label_values=_label_values)


class PrometheusServer:
    """Debian's `prometheus` on 127.0.0.1 (a free port, its own TSDB folder), scraping `target` every second
    as job "lmscope"; queried through its HTTP API."""

    def __init__(self, folder: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus (Debian's package) is installed by .ci/test.sh"
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "lmscope", "static_configs": [{"targets": [target]}]}]}))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait(lambda: self._get("/-/ready") is not None, "ready")
            self.version = self.api("/api/v1/status/buildinfo")["version"]
        except BaseException:
            self.stop()
            raise

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.read()
        except OSError:
            assert self._process.poll() is None, f"prometheus exited: {self.log.read_text()}"
            return None

    def api(self, path: str, **params: object) -> object:
        """The `data` of a Prometheus API answer."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: {error.code} {error.read().decode()}") from None
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float) -> list[dict]:
        data = self.api("/api/v1/query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] == "vector", data
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        data = self.api("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)
        return data["result"]

    def last_scrape(self) -> float:
        """When the last scrape of the target that succeeded began (0 before the first)."""
        now = time.time()
        up = self.query('up{job="lmscope"}', now)
        # timestamp() gives the sample's time only when applied to a selector (of an expression: the query's).
        scraped = self.query('timestamp(up{job="lmscope"})', now)
        return float(scraped[0]["value"][1]) if up and up[0]["value"][1] == "1" and scraped else 0.0

    def wait_for_scrape_after(self, moment: float) -> float:
        """Wait until a scrape that began after `moment` has been stored; its start time."""
        scraped: list[float] = []
        self._wait(lambda: scraped.append(self.last_scrape()) or scraped[-1] > moment, f"a scrape after {moment}")
        return scraped[-1]

    def _wait(self, done: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"prometheus: no {what} within {timeout} s; log: {self.log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@pytest.fixture(scope="module")
def start_prometheus(tmp_path_factory):
    """`start_prometheus("host:port")`: a PrometheusServer scraping that target; stopped after the module."""
    started: list[PrometheusServer] = []

    def start(target: str) -> PrometheusServer:
        started.append(PrometheusServer(tmp_path_factory.mktemp("prometheus"), target))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture():
    return free_port
