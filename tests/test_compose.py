"""Offline checks of docker-compose.yml and every config file it mounts (deploy/, dashboards/).

No Docker engine runs on this machine, so nothing here starts a container. What can be proven without
one is proven: the files parse, the compose file matches the official Compose Specification schema (the
copy vendored in the check-jsonschema package), every mounted host path exists, images are pinned,
healthchecks and depends_on agree, no two services want the same host port, every service-to-service URL
names a port its target listens on, the collector's pipelines use only components it defines and export
to services that exist, Prometheus scrapes what the stack serves, Grafana's provisioning points at the
mounted dashboards, and the host ports equal lmscope's exporter defaults. `promtool check config`
checks the Prometheus file.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from lmscope.telemetry._exporters.endpoints import (
    JAEGER_OTLP_GRPC_ENDPOINT,
    JAEGER_OTLP_HTTP_ENDPOINT,
    MLFLOW_DEFAULT_TRACKING_URI,
)
from lmscope.telemetry._options import DEFAULT_PROMETHEUS_ENDPOINT

LMSCOPE_DEFAULTS = {
    "jaeger_http_endpoint": JAEGER_OTLP_HTTP_ENDPOINT,  # exporters=["jaeger"] (http/protobuf)
    "jaeger_grpc_endpoint": JAEGER_OTLP_GRPC_ENDPOINT,  # exporters=["jaeger"] with the gRPC protocol
    "otlp_metrics_endpoint": "http://localhost:4318",  # metrics_exporters=["otlp"]: the OTel SDK's own default
    "langfuse_host": "http://localhost:3000",  # what deploy/README.md tells users to set as LANGFUSE_HOST
    "mlflow_tracking_uri": MLFLOW_DEFAULT_TRACKING_URI,  # exporters=["mlflow"]
    "prometheus_scrape_port": int(DEFAULT_PROMETHEUS_ENDPOINT.rsplit(":", 1)[1]),  # metrics_exporters=["prometheus"]
}
"""lmscope's exporter defaults, from the constants the exporters read: the stack must listen where they send."""

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COLLECTOR_SERVICE, PROMETHEUS_SERVICE, GRAFANA_SERVICE = "otel-collector", "prometheus", "grafana"
GRAFANA_DATASOURCE_UIDS = {"prometheus": "prometheus", "jaeger": "jaeger"}  # uid -> type
# Images built FROM scratch: no shell, wget or curl inside, so compose cannot run a healthcheck in them.
NO_SHELL_IMAGES = {"otel/opentelemetry-collector-contrib"}
FLOATING_TAGS = {"latest", "stable", "main", "master", "edge", "nightly", "dev"}
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s]+@)?([A-Za-z0-9_.-]+):(\d+)")
_HEALTHCHECK_URL = re.compile(r"https?://([^/:\s]+):(\d+)")
_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}")


def _load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


def _defaults(value: object) -> str:
    """A compose string as `docker compose` sees it with no variables set: `${X:-d}` becomes `d`."""
    return _INTERPOLATION.sub(lambda m: m.group(1) or "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _published(service: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of every published port; short and long syntax."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", "0.0.0.0"), int(entry["published"]), int(entry["target"])))
            continue
        parts = _defaults(entry).split("/")[0].split(":")
        if len(parts) == 1:
            continue  # container port only: Docker picks a random host port
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        out.append((host_ip, int(parts[-2]), int(parts[-1])))
    return out


def _listens_on(service: dict) -> set[int]:
    """Container ports a service declares (published or `expose`d): what other services may call."""
    return {container for _, _, container in _published(service)} | {int(p) for p in service.get("expose", [])}


def _publisher(services: dict, host_port: int) -> tuple[str, int]:
    """The service publishing `host_port` on the host and the container port behind it."""
    found = [(name, c) for name, s in services.items() for _, h, c in _published(s) if h == host_port]
    assert len(found) == 1, f"host port {host_port} is published by {found or 'no service'}"
    return found[0]


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host source, container target) of every bind mount; named volumes are not included."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                out.append((entry["source"], entry["target"]))
            continue
        source, target = entry.split(":")[:2]
        if source.startswith((".", "/", "~")):
            out.append((source, target))
    return out


def _mounted_host_path(service: dict, container_path: str) -> Path:
    sources = [src for src, target in _bind_mounts(service) if target == container_path]
    assert sources, f"nothing is mounted at {container_path}"
    return (ROOT / sources[0]).resolve()


def _host_port(endpoint: str) -> tuple[str, int]:
    """`http://h:p/x` or `h:p` -> (h, p)."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.hostname or "", parts.port or 0
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def _assert_service_listens(services: dict, host: str, port: int, where: str) -> None:
    assert host in services, f"{where}: {host!r} is not a service of docker-compose.yml"
    assert port in _listens_on(services[host]), (
        f"{where}: {host}:{port}, but {host} only declares ports {sorted(_listens_on(services[host]))}"
    )


def _collector_config() -> dict:
    return _load_yaml(ROOT / "deploy/otel-collector/config.yaml")


def _prometheus_targets() -> dict[str, list[str]]:
    config = _load_yaml(ROOT / "deploy/prometheus/prometheus.yml")
    return {
        job["job_name"]: [t for group in job.get("static_configs", []) for t in group["targets"]]
        for job in config["scrape_configs"]
    }


# --- the files themselves ----------------------------------------------------------------------------


def test_every_config_file_parses():
    yaml_files = [COMPOSE_FILE, *sorted((ROOT / "deploy").rglob("*.y*ml"))]
    for path in yaml_files:
        _load_yaml(path)
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        assert isinstance(json.loads(path.read_text()), dict), path
    assert {p.relative_to(ROOT).as_posix() for p in yaml_files} >= {
        "docker-compose.yml",
        "deploy/otel-collector/config.yaml",
        "deploy/prometheus/prometheus.yml",
        "deploy/grafana/provisioning/datasources/lmscope.yaml",
        "deploy/grafana/provisioning/dashboards/lmscope.yaml",
    }


def _compose_spec_errors(document: dict) -> list[str]:
    from jsonschema import validators

    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_official_compose_spec_schema(compose):
    assert _compose_spec_errors(compose) == []
    # The schema is strict enough to matter: a misspelt key and a wrongly typed field are both caught.
    broken = copy.deepcopy(compose)
    broken["services"]["jaeger"]["imagee"] = broken["services"]["jaeger"].pop("image")
    broken["services"]["prometheus"]["healthcheck"]["interval"] = 10  # a duration is a string: "10s"
    errors = _compose_spec_errors(broken)
    assert any("imagee" in e for e in errors) and any("interval" in e for e in errors), errors


# --- docker-compose.yml --------------------------------------------------------------------------------


def test_every_mounted_host_path_exists_and_named_volumes_are_declared(compose, services):
    for name, service in services.items():
        for source, _ in _bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
        for entry in service.get("volumes", []):
            volume = entry.get("source") if isinstance(entry, dict) else entry.split(":")[0]
            if isinstance(entry, dict) and entry.get("type") != "volume":
                continue
            if not volume.startswith((".", "/", "~")):
                assert volume in (compose.get("volumes") or {}), f"{name} uses undeclared volume {volume}"


def _image_tag(image: str) -> str:
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]  # a registry's :port sits before the last slash, a tag after it
    return last.split(":", 1)[1] if ":" in last else ""


def test_every_image_is_pinned_to_a_release(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        tag = _image_tag(image)
        assert tag, f"{name}: {image} has no tag (that means latest)"
        assert tag.lower() not in FLOATING_TAGS, f"{name}: {image} uses a floating tag"
        # A bare major ("redis:7") moves with every release; pin at least major.minor or a dated release.
        assert not re.fullmatch(r"v?\d+", tag), f"{name}: {image} pins only a major version"
        assert "$" not in image, f"{name}: the image version must not depend on the environment"


def test_deploy_readme_names_the_images_the_stack_runs(services):
    readme = (ROOT / "deploy/README.md").read_text()
    missing = sorted({s["image"] for s in services.values()} - {i for i in re.findall(r"`([^`\s]+:[^`\s]+)`", readme)})
    assert missing == [], f"deploy/README.md does not list {missing}"


def test_every_service_has_a_healthcheck_probing_a_port_it_listens_on(services):
    for name, service in services.items():
        repository = service["image"].split("@")[0].removesuffix(":" + _image_tag(service["image"]))
        if repository in NO_SHELL_IMAGES:
            assert "healthcheck" not in service, f"{name}: a healthcheck cannot run in {repository}"
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name} has no runnable healthcheck"
        for host, port in _HEALTHCHECK_URL.findall(" ".join(check["test"][1:])):
            # busybox wget resolves localhost to ::1 first and gives up when the container has no IPv6.
            assert host == "127.0.0.1", f"{name}: healthcheck should probe 127.0.0.1, not {host}"
            assert int(port) in _listens_on(service), f"{name}: healthcheck probes {port}, not a port it declares"


def test_depends_on_names_defined_services_and_waits_only_on_healthchecks(services):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on undefined service {dependency}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            # A service that starts by default cannot need one that only starts under a profile.
            needed_profiles = set(services[dependency].get("profiles", []))
            if needed_profiles:
                assert needed_profiles & set(service.get("profiles", [])), (
                    f"{name} depends on {dependency}, which runs only with profiles {sorted(needed_profiles)}"
                )


def test_no_two_services_publish_the_same_host_port(services):
    owners: dict[int, list[str]] = {}
    for name, service in services.items():
        for _, host_port, _ in _published(service):
            owners.setdefault(host_port, []).append(name)
    clashes = {port: names for port, names in owners.items() if len(names) > 1}
    assert clashes == {}, f"host ports published twice (all profiles on): {clashes}"


def test_published_ports_stay_on_localhost(services):
    """The stack ships placeholder credentials (Grafana admin, Langfuse keys): nothing listens beyond the host."""
    for name, service in services.items():
        for host_ip, host_port, _ in _published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {host_port} on {host_ip}"


def test_urls_between_services_name_ports_their_target_listens_on(services):
    """DATABASE_URL, CLICKHOUSE_URL, S3 endpoints and the like, in environments and commands."""
    checked = 0
    for name, service in services.items():
        environment = service.get("environment") or {}
        texts = list(environment.values()) if isinstance(environment, dict) else list(environment)
        command = service.get("command") or []
        texts += command if isinstance(command, list) else [command]
        for host, port in _URL_IN_TEXT.findall(" ".join(_defaults(t) for t in texts)):
            if host in services:
                _assert_service_listens(services, host, int(port), f"{name}'s environment")
                checked += 1
    assert checked >= 4  # Langfuse's Postgres, ClickHouse (HTTP and native) and MinIO URLs at least


# --- the OpenTelemetry Collector -----------------------------------------------------------------------


def test_collector_runs_the_config_file_checked_here(services):
    collector = services[COLLECTOR_SERVICE]
    config_paths = [arg.split("=", 1)[1] for arg in collector["command"] if arg.startswith("--config=")]
    assert len(config_paths) == 1
    assert _mounted_host_path(collector, config_paths[0]) == ROOT / "deploy/otel-collector/config.yaml"


def test_collector_pipelines_use_only_defined_components_and_every_component_is_used():
    config = _collector_config()
    service = config["service"]
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for pipeline_name, pipeline in service["pipelines"].items():
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), f"pipeline {pipeline_name} uses undefined {kind} {component}"
                used[kind].add(component)
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"pipeline {pipeline_name} is incomplete"
    for kind, names in used.items():
        assert set(config.get(kind) or {}) == names, f"{kind} defined but unused: {set(config[kind]) - names}"
    for extension in service.get("extensions", []):
        assert extension in config["extensions"], f"service.extensions names undefined {extension}"
    assert set(service["pipelines"]) == {"traces", "metrics"}


def test_collector_receives_on_its_published_ports_and_exports_to_services_that_exist(services):
    config, collector = _collector_config(), services[COLLECTOR_SERVICE]
    for protocol, settings in config["receivers"]["otlp"]["protocols"].items():
        host, port = _host_port(settings["endpoint"])
        assert host == "0.0.0.0", f"otlp {protocol} listens on {host}: unreachable from outside the container"
        assert port in _listens_on(collector), f"otlp {protocol} port {port} is not published"
    scraped = {t for targets in _prometheus_targets().values() for t in targets}
    for exporter_name, settings in config["exporters"].items():
        host, port = _host_port(settings["endpoint"])
        if host == "0.0.0.0":  # a pull exporter: Prometheus must scrape it at the collector's address
            assert port in _listens_on(collector), f"{exporter_name} serves {port}, which is not exposed"
            assert f"{COLLECTOR_SERVICE}:{port}" in scraped, f"{exporter_name} on {port} is never scraped"
        else:
            _assert_service_listens(services, host, port, f"collector exporter {exporter_name}")
    health = _host_port(config["extensions"]["health_check"]["endpoint"])
    assert health[0] == "0.0.0.0" and health[1] in _listens_on(collector)


# --- Prometheus ----------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_collector_and_lmscope_on_the_host(services):
    prometheus = services[PROMETHEUS_SERVICE]
    assert _mounted_host_path(prometheus, "/etc/prometheus/prometheus.yml") == ROOT / "deploy/prometheus/prometheus.yml"
    targets = _prometheus_targets()
    for job, job_targets in targets.items():
        for target in job_targets:
            host, port = _host_port(target)
            if host == "host.docker.internal":
                assert "host.docker.internal:host-gateway" in prometheus.get("extra_hosts", []), (
                    "Prometheus needs extra_hosts host.docker.internal:host-gateway to reach the host on Linux"
                )
            elif host == "localhost":
                assert port in _listens_on(prometheus), f"job {job} scrapes Prometheus itself on {port}"
            else:
                _assert_service_listens(services, host, port, f"Prometheus job {job}")
    assert targets["lmscope"] == [f"host.docker.internal:{LMSCOPE_DEFAULTS['prometheus_scrape_port']}"]
    assert [_host_port(t)[0] for t in targets["otel-collector"]] == [COLLECTOR_SERVICE]


def test_promtool_accepts_the_prometheus_config():
    """promtool comes with Debian's prometheus, which the README's test command installs."""
    result = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana -------------------------------------------------------------------------------------------


def test_grafana_datasources_have_fixed_uids_and_point_at_services(services):
    grafana = services[GRAFANA_SERVICE]
    folder = _mounted_host_path(grafana, "/etc/grafana/provisioning/datasources")
    assert folder == ROOT / "deploy/grafana/provisioning/datasources"
    datasources = [d for path in sorted(folder.glob("*.y*ml")) for d in _load_yaml(path)["datasources"]]
    assert {d["uid"]: d["type"] for d in datasources} == GRAFANA_DATASOURCE_UIDS
    for datasource in datasources:
        host, port = _host_port(datasource["url"])
        _assert_service_listens(services, host, port, f"Grafana data source {datasource['uid']}")
    assert [d["uid"] for d in datasources if d.get("isDefault")] == ["prometheus"]


def test_grafana_loads_the_dashboards_folder_of_the_repository(services):
    grafana = services[GRAFANA_SERVICE]
    folder = _mounted_host_path(grafana, "/etc/grafana/provisioning/dashboards")
    assert folder == ROOT / "deploy/grafana/provisioning/dashboards"
    providers = [p for path in sorted(folder.glob("*.y*ml")) for p in _load_yaml(path)["providers"]]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    dashboards_path = providers[0]["options"]["path"]
    assert _mounted_host_path(grafana, dashboards_path) == ROOT / "dashboards"
    assert (ROOT / "dashboards/README.md").is_file()


def _datasource_uids(node: object) -> set[str]:
    """Every concrete datasource uid a dashboard JSON names (template variables like ${ds} excluded)."""
    found: set[str] = set()
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and isinstance(source.get("uid"), str) and not source["uid"].startswith("$"):
            found.add(source["uid"])
        for value in node.values():
            found |= _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            found |= _datasource_uids(value)
    return found


def test_dashboards_name_only_provisioned_datasource_uids():
    builtin = {"grafana", "-- Grafana --", "-- Dashboard --", "-- Mixed --"}
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        unknown = _datasource_uids(json.loads(path.read_text())) - set(GRAFANA_DATASOURCE_UIDS) - builtin
        assert unknown == set(), f"{path.name} uses datasource uids Grafana is not provisioned with: {unknown}"
    # The walker itself finds nested uids and leaves template variables alone.
    sample = {"panels": [{"datasource": {"uid": "prometheus"}, "targets": [{"datasource": {"uid": "${ds}"}}]}]}
    assert _datasource_uids(sample) == {"prometheus"}


# --- lmscope's defaults ----------------------------------------------------------------------------


def test_host_ports_agree_with_lmscope_exporter_defaults(services):
    collector_config = _collector_config()
    protocols = collector_config["receivers"]["otlp"]["protocols"]
    for key, protocol in (("jaeger_http_endpoint", "http"), ("jaeger_grpc_endpoint", "grpc"),
                          ("otlp_metrics_endpoint", "http")):
        service, container_port = _publisher(services, _host_port(LMSCOPE_DEFAULTS[key])[1])
        assert service == COLLECTOR_SERVICE, f"{key} reaches {service}, not the collector"
        assert _host_port(protocols[protocol]["endpoint"])[1] == container_port, f"{key}: collector {protocol} port"
    # What reaches the collector goes on where lmscope's option names promise.
    pipelines = collector_config["service"]["pipelines"]
    trace_targets = {_host_port(collector_config["exporters"][e]["endpoint"])[0] for e in pipelines["traces"]["exporters"]}
    assert trace_targets == {"jaeger"} and "otlp" in pipelines["metrics"]["receivers"]

    service, container_port = _publisher(services, _host_port(LMSCOPE_DEFAULTS["langfuse_host"])[1])
    assert service == "langfuse-web" and container_port == 3000  # Next.js's PORT in the Langfuse image
    assert services[service]["environment"]["NEXTAUTH_URL"] == LMSCOPE_DEFAULTS["langfuse_host"]

    service, container_port = _publisher(services, _host_port(LMSCOPE_DEFAULTS["mlflow_tracking_uri"])[1])
    assert service == "mlflow"
    assert f"--port={container_port}" in services[service]["command"]
