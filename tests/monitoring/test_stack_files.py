"""The monitoring stack's files, checked by parsing (no Docker here): compose.yaml, the Dockerfile, the Collector,
Grafana's provisioning and dashboard, Alertmanager, and that every address one of them names resolves to a compose
service listening on that port."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scripts.stack import Ports, Stack
from tests.programs import program

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = ROOT / "compose.yaml"
COLLECTOR = ROOT / "collector-config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
ALERTMANAGER = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "monitoring" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = GRAFANA / "dashboards" / "mistral-metrics.json"

SERVICES = {"mistralrs", "proxy", "proxy-cpu", "proxy-1", "proxy-2", "balancer", "otel-collector", "prometheus",
            "alertmanager", "grafana", "jaeger", "quota-store"}  # fmt: skip
# Host ports: the proxy, Prometheus, Grafana, Alertmanager, Jaeger's UI, the Collector's OTLP gRPC/HTTP and
# Prometheus exporter, and the Collector's health_check (its image has no shell for a Docker healthcheck).
PUBLISHED = {11434, 9090, 3000, 9093, 16686, 4317, 4318, 8889, 13133}
PROFILES = ("gpu", "cpu", "scale-out")
HEALTHCHECKED = {"mistralrs", "proxy", "proxy-cpu", "prometheus", "alertmanager", "grafana"}

# mistral.rs's own /metrics (EricLBuehler/mistral.rs 9e922623f, mistralrs-server-core/src/metrics.rs,
# mistralrs-core/src/engine/logger.rs and mod.rs, mistralrs-core/src/paged_attention/scheduler.rs): series → labels.
MISTRALRS_SERIES: dict[str, set[str]] = {
    "mistralrs_time_to_first_token_seconds": {"method", "path", "model", "status"},
    "mistralrs_inter_token_latency_seconds": {"method", "path", "model", "status"},
    "mistralrs_tokens_processed_total": set(),
    "mistralrs_sequences_running": set(),
    "mistralrs_sequences_waiting": set(),
    "mistralrs_sequences_capacity": set(),
    "mistralrs_kv_cache_blocks_used": set(),
    "mistralrs_kv_cache_blocks_total": set(),
    "mistralrs_prefix_cache_hits_total": set(),
    "mistralrs_prefix_cache_lookups_total": set(),
}
TARGET_LABELS = {"job", "instance", "engine", "engine_type"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(COMPOSE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    data = yaml.safe_load(_collector_defaults(COLLECTOR.read_text()))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------------------------------- helpers


def _interpolate(value: str) -> str:
    """Compose interpolation with every variable unset: ``${X:-d}``/``${X-d}`` → d, ``${X}`` → ""."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _collector_defaults(text: str) -> str:
    """The Collector's own expansion with every variable unset: ``${env:X:-d}`` → d (compose sets none of them)."""
    return re.sub(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", lambda m: m.group(1), text)


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: v for k, _, v in (item.partition("=") for item in env)}
    return {k: None if v is None else str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> list[tuple[str | None, int | None, int]]:
    """(host address, host port, container port) of every ``ports`` entry, short or long syntax."""
    result: list[tuple[str | None, int | None, int]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((entry.get("host_ip"), int(published) if published else None, int(entry["target"])))
            continue
        parts = _interpolate(str(entry)).split("/")[0].rsplit(":", 2)
        if len(parts) == 3:
            result.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            result.append((None, int(parts[0]), int(parts[1])))
        else:
            result.append((None, None, int(parts[0])))
    return result


def _listening(service: dict[str, Any]) -> set[int]:
    """Ports the service's container listens on, as compose declares them (``ports`` targets and ``expose``)."""
    return {container for _, _, container in _ports(service)} | {int(p) for p in service.get("expose", [])}


def _hostnames(services: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Hostname on the compose network → the services answering to it (the service name and network aliases)."""
    names: dict[str, set[str]] = {}
    for name, service in services.items():
        names.setdefault(name, set()).add(name)
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                for alias in (network or {}).get("aliases", []):
                    names.setdefault(alias, set()).add(name)
    return names


def _resolve(services: dict[str, dict[str, Any]], address: str) -> set[str]:
    """The services behind ``host:port`` or a URL; fails unless every one of them listens on that port."""
    if "//" not in address:
        address = f"//{address}"
    parts = urlsplit(address)
    assert parts.hostname and parts.port, f"{address}: no host or port"
    behind = _hostnames(services).get(parts.hostname)
    assert behind, f"{address}: {parts.hostname} is no compose service or alias"
    for name in behind:
        assert parts.port in _listening(services[name]), f"{address}: {name} does not listen on {parts.port}"
    return behind


def _active(service: dict[str, Any], profile: str) -> bool:
    profiles = service.get("profiles")
    return not profiles or profile in profiles


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: spec or {"condition": "service_started"} for name, spec in deps.items()}


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of the service's bind mounts."""
    binds = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                binds.append((entry["source"], entry["target"]))
            continue
        source, _, rest = entry.partition(":")
        if source.startswith((".", "/", "~")):
            binds.append((source, rest.split(":")[0]))
    return binds


def _named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "volume":
                names.append(entry["source"])
            continue
        source, sep, _ = entry.partition(":")
        if sep and not source.startswith((".", "/", "~")):
            names.append(source)
    return names


# ------------------------------------------------------------------------------------------- compose.yaml


def test_compose_defines_the_fixed_services(services: dict[str, dict[str, Any]]) -> None:
    assert SERVICES <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_compose_documents_how_to_start_each_profile() -> None:
    head = COMPOSE.read_text().split("\nservices:")[0]
    for profile in PROFILES:
        assert f"docker compose --profile {profile} up -d" in head


def test_profiles_split_gpu_cpu_and_scale_out(services: dict[str, dict[str, Any]]) -> None:
    assert services["mistralrs"]["profiles"] == ["gpu", "scale-out"]
    assert services["proxy"]["profiles"] == ["gpu"]
    assert services["proxy-cpu"]["profiles"] == ["cpu"]
    for name in ("proxy-1", "proxy-2", "balancer", "quota-store"):
        assert services[name]["profiles"] == ["scale-out"], name
    for name in SERVICES - {"mistralrs", "proxy", "proxy-cpu", "proxy-1", "proxy-2", "balancer", "quota-store"}:
        assert not services[name].get("profiles"), f"{name} runs in every profile"
    answering = {profile: sorted(n for n in _hostnames(services)["proxy"] if _active(services[n], profile))
                 for profile in PROFILES}  # fmt: skip
    # Prometheus scrapes whatever answers to "proxy": one proxy, or each replica (never the balancer).
    assert answering == {"gpu": ["proxy"], "cpu": ["proxy-cpu"], "scale-out": ["proxy-1", "proxy-2"]}


def test_the_balancer_runs_the_haproxy_of_the_tests(services: dict[str, dict[str, Any]]) -> None:
    versions = dict(line.split("=", 1) for line in (ROOT / "monitoring" / "versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))  # fmt: skip
    balancer = services["balancer"]
    assert balancer["image"] == f"haproxy:{versions['HAPROXY_VERSION']}"
    assert _binds(balancer) == [("./monitoring/haproxy/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg")]
    config = (ROOT / "monitoring" / "haproxy" / "haproxy.cfg").read_text()
    servers = [line.split()[1:3] for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == [["proxy-1", "proxy-1:11434"], ["proxy-2", "proxy-2:11434"]]
    assert all(_resolve(services, address) == {name} for name, address in servers)


def test_the_replicas_share_the_quota_store_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    versions = dict(line.split("=", 1) for line in (ROOT / "monitoring" / "versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))  # fmt: skip
    store = services["quota-store"]
    assert store["image"] == f"redis:{versions['REDIS_VERSION']}"
    assert store["command"] == ["redis-server", "--save", "", "--appendonly", "no"]  # as tests/tenants runs it
    for name in ("proxy-1", "proxy-2"):
        url = services[name]["environment"]["QUOTA_STORE_URL"]
        assert url == "redis://quota-store:6379/0", name
        assert _resolve(services, "quota-store:6379") == {"quota-store"}
    installed = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    assert f"v={versions['REDIS_VERSION']} " in installed, installed  # the Debian package CI installs


def test_bind_mount_sources_exist(services: dict[str, dict[str, Any]]) -> None:
    mounts = [(name, source) for name, service in services.items() for source, _ in _binds(service)]
    assert mounts
    for name, source in mounts:
        assert not Path(source).is_absolute() and not source.startswith("~"), f"{name}: {source} is outside the repo"
        assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in _named_volumes(service):
            assert volume in declared, f"{name} uses undeclared volume {volume}"


def test_build_context_has_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in ("proxy", "proxy-cpu"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file(), name


def test_depends_on_names_defined_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dep, spec in _depends_on(service).items():
            assert dep in services, f"{name} depends on undefined {dep}"
            condition = spec.get("condition", "service_started")
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"


def test_dependencies_outside_a_profile_are_optional(services: dict[str, dict[str, Any]]) -> None:
    """Compose refuses to start a service whose required dependency its profile leaves out."""
    for profile in PROFILES:
        for name, service in services.items():
            if not _active(service, profile):
                continue
            for dep, spec in _depends_on(service).items():
                if not _active(services[dep], profile):
                    assert spec.get("required") is False, f"profile {profile}: {name} requires {dep}"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def healthy(name: str, dep: str) -> bool:
        return _depends_on(services[name]).get(dep, {}).get("condition") == "service_healthy"

    assert healthy("proxy", "mistralrs")
    assert healthy("prometheus", "proxy") and healthy("prometheus", "proxy-cpu")
    assert healthy("grafana", "prometheus")
    for name in ("proxy", "proxy-cpu"):
        assert "otel-collector" in _depends_on(services[name])


def test_healthchecks_are_exec_lists(services: dict[str, dict[str, Any]]) -> None:
    assert HEALTHCHECKED <= {name for name, service in services.items() if "healthcheck" in service}
    for name, service in services.items():
        if "healthcheck" not in service:
            continue
        test = service["healthcheck"]["test"]
        assert isinstance(test, list) and test and all(isinstance(arg, str) for arg in test), name
        assert test[0] in {"CMD", "CMD-SHELL", "NONE"}, name


def test_mistralrs_waits_long_for_its_models(services: dict[str, dict[str, Any]]) -> None:
    mistralrs = services["mistralrs"]
    assert re.fullmatch(r"\d+m", mistralrs["healthcheck"]["start_period"]), "minutes: models load before it listens"
    assert "http://127.0.0.1:8080/health" in mistralrs["healthcheck"]["test"]
    command = [_interpolate(arg) for arg in mistralrs["command"]]
    assert command[:3] == ["serve", "-p", "8080"] and command[3] == "-m" and command[4]
    assert any(v.endswith(":/models") for v in mistralrs["volumes"])
    devices = mistralrs["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device.get("capabilities", []) for device in devices)


def test_published_ports_are_the_documented_ones(services: dict[str, dict[str, Any]]) -> None:
    published: set[int] = set()
    for profile in PROFILES:
        active: list[int] = []
        for name, service in services.items():
            if not _active(service, profile):
                continue
            for host, port, _ in _ports(service):
                assert port is not None, f"{name}: random host port"
                assert host == "127.0.0.1", f"{name}: {port} published beyond loopback"
                active.append(port)
        assert len(active) == len(set(active)), f"profile {profile}: a host port is published twice"
        published |= set(active)
    assert published == PUBLISHED
    assert 4317 not in {port for _, port, _ in _ports(services["jaeger"])}, "the collector publishes 4317"


def test_proxies_listen_on_every_interface_inside(services: dict[str, dict[str, Any]]) -> None:
    for name in ("proxy", "proxy-cpu"):
        env = _environment(services[name])
        assert env.get("BIND_ADDRESS") == "0.0.0.0:11434", name
        assert 11434 in _listening(services[name])


def test_proxy_upstreams(services: dict[str, dict[str, Any]]) -> None:
    assert _resolve(services, _environment(services["proxy"])["MISTRAL_URL"] or "") == {"mistralrs"}
    cpu = services["proxy-cpu"]
    env = _environment(cpu)
    assert "MISTRAL_URL" not in env, "the cpu proxy runs mistral.rs in-process"
    cache = env["MODEL_CACHE_DIR"]
    assert any(v.endswith(f":{cache}") for v in cpu["volumes"]), "the model cache outlives the container"


def test_proxy_otlp_endpoint_is_the_collectors_grpc_receiver(
    services: dict[str, dict[str, Any]], collector: dict[str, Any]
) -> None:
    grpc = urlsplit("//" + collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]).port
    for name in ("proxy", "proxy-cpu"):
        env = _environment(services[name])
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"] or ""
        assert _resolve(services, endpoint) == {"otel-collector"}
        assert urlsplit(endpoint).port == grpc == 4317
        assert env.get("OTEL_SERVICE_NAME") == "mistral-ollama-proxy"


def test_grafana_admin_credentials_come_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    env = _environment(services["grafana"])
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-changeme}"
    assert env["GF_SECURITY_ADMIN_USER"] == "${GRAFANA_ADMIN_USER:-admin}"


def test_grafana_mounts_match_its_provisioning(services: dict[str, dict[str, Any]]) -> None:
    binds = {target: source for source, target in _binds(services["grafana"])}
    assert (ROOT / binds["/etc/grafana/provisioning"]).resolve() == (GRAFANA / "provisioning").resolve()
    providers = _yaml(PROVIDERS)["providers"]
    for provider in providers:
        path = provider["options"]["path"]
        assert path in binds, f"provider path {path} is not mounted"
        assert list((ROOT / binds[path]).glob("*.json")), f"no dashboard in {binds[path]}"
    home = _environment(services["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        mounted = [target for target in binds if home.startswith(target + "/")]
        assert mounted and (ROOT / binds[mounted[0]] / home[len(mounted[0]) + 1 :]).is_file()


def test_prometheus_runs_the_mounted_config_with_exemplars(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    flags = prometheus["command"]
    assert "--enable-feature=exemplar-storage" in flags and "--web.enable-lifecycle" in flags
    config = next(flag.split("=", 1)[1] for flag in flags if flag.startswith("--config.file="))
    binds = {target: source for source, target in _binds(prometheus)}
    assert (ROOT / binds["/etc/prometheus"]).resolve() == PROMETHEUS.parent.resolve()
    assert config == "/etc/prometheus/prometheus.yml"


def test_alertmanager_mounts_its_config(services: dict[str, dict[str, Any]]) -> None:
    binds = {target: source for source, target in _binds(services["alertmanager"])}
    assert (ROOT / binds["/etc/alertmanager/alertmanager.yml"]).resolve() == ALERTMANAGER.resolve()


def test_prometheus_targets_resolve_to_compose_services(services: dict[str, dict[str, Any]]) -> None:
    if not PROMETHEUS.exists():
        pytest.skip("monitoring/prometheus/prometheus.yml is not written yet")
    config = _yaml(PROMETHEUS)
    jobs = {}
    for job in config["scrape_configs"]:
        targets = [t for static in job.get("static_configs", []) for t in static["targets"]]
        targets += [f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
        jobs[job["job_name"]] = targets
        for target in targets:
            _resolve(services, target)
    assert jobs.get("mistral") == ["proxy:11434"]
    # DNS discovery finds each proxy under that name: one per profile, both replicas in scale-out, no balancer.
    proxies = _resolve(services, "proxy:11434")
    by_profile = {profile: sorted(name for name in proxies if _active(services[name], profile))
                  for profile in ("gpu", "cpu", "scale-out")}  # fmt: skip
    assert by_profile == {"gpu": ["proxy"], "cpu": ["proxy-cpu"], "scale-out": ["proxy-1", "proxy-2"]}
    assert jobs.get("otel-collector") == ["otel-collector:8889"]
    assert jobs.get("mistralrs") == ["mistralrs:8080"]
    alertmanagers = [
        t for am in config["alerting"]["alertmanagers"] for static in am["static_configs"] for t in static["targets"]
    ]
    assert alertmanagers and all(_resolve(services, t) == {"alertmanager"} for t in alertmanagers)


# ------------------------------------------------------------------------------------------- Dockerfile


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_builds_the_proxy_as_a_non_root_user() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    args = {}
    for op, arg in instructions:
        args.setdefault(op, []).append(arg)
    assert any("pip install ." in run for run in args["RUN"])
    assert args["USER"][-1] not in {"root", "0"}
    assert "11434" in args["EXPOSE"][-1].split()
    assert any(re.search(r"\bBIND_ADDRESS=0\.0\.0\.0:11434\b", env) for env in args["ENV"])
    assert "HEALTHCHECK" in args and "127.0.0.1:11434" in args["HEALTHCHECK"][-1]
    command = json.loads(args["CMD"][-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["mistral-ollama-proxy", "serve"] and command[0] in scripts


def test_dockerfile_copies_what_pip_install_needs_and_dockerignore_keeps_it() -> None:
    copied = [arg.split()[:-1] for op, arg in _instructions() if op == "COPY"]
    sources = {source.rstrip("/") for group in copied for source in group if not source.startswith("--")}
    assert {"pyproject.toml", "README.md", "app", "otel"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
    ignored = {
        line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.strip()[:1] not in {"", "#"}
    }
    assert {".git", "tests/js/node_modules"} <= ignored
    assert not sources & ignored


# ------------------------------------------------------------------------------------------- Collector


def test_collector_pipelines_use_defined_components(collector: dict[str, Any]) -> None:
    pipelines = collector["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in (collector.get(section) or {}), f"{name}: {section} {component} undefined"
        assert pipeline["receivers"] and pipeline["exporters"], name
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
    assert pipelines["traces"]["exporters"] == ["otlp_grpc/jaeger"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]


def test_collector_extensions_are_enabled(collector: dict[str, Any]) -> None:
    defined = set(collector.get("extensions") or {})
    enabled = set(collector["service"].get("extensions", []))
    assert defined == enabled and "health_check" in enabled


def test_collector_memory_limiter_is_bounded(collector: dict[str, Any]) -> None:
    limiter = collector["processors"]["memory_limiter"]
    assert limiter["check_interval"]
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


def test_collector_prometheus_exporter_keeps_the_proxys_names(collector: dict[str, Any]) -> None:
    exporter = collector["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True, "exemplars need OpenMetrics"
    assert not exporter.get("namespace"), "a namespace would rename mistral_http_requests_total"
    assert not (exporter.get("resource_to_telemetry_conversion") or {}).get("enabled", False)
    assert exporter.get("add_metric_suffixes", True) is True


def test_collector_addresses_resolve(collector: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    jaeger = collector["exporters"]["otlp_grpc/jaeger"]
    assert _resolve(services, jaeger["endpoint"]) == {"jaeger"}
    assert jaeger["tls"]["insecure"] is True
    listening = _listening(services["otel-collector"])
    endpoints = [
        *(protocol["endpoint"] for protocol in collector["receivers"]["otlp"]["protocols"].values()),
        collector["exporters"]["prometheus"]["endpoint"],
        collector["extensions"]["health_check"]["endpoint"],
    ]
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        assert host == "0.0.0.0", f"{endpoint}: unreachable from other containers"
        assert int(port) in listening, f"compose does not expose the collector's {endpoint}"
    binds = {target: source for source, target in _binds(services["otel-collector"])}
    config = next(arg.split("=", 1)[1] for arg in services["otel-collector"]["command"] if arg.startswith("--config"))
    assert (ROOT / binds[config]).resolve() == COLLECTOR.resolve()


# ------------------------------------------------------------------------------------------- Grafana


def test_grafana_datasources(services: dict[str, dict[str, Any]]) -> None:
    datasources = _yaml(DATASOURCES)["datasources"]
    by_uid = {ds["uid"]: ds for ds in datasources}
    assert len(by_uid) == len(datasources)
    for ds in datasources:
        _resolve(services, ds["url"])
    prometheus, jaeger = by_uid["prometheus"], by_uid["jaeger"]
    assert prometheus["type"] == "prometheus" and _resolve(services, prometheus["url"]) == {"prometheus"}
    assert jaeger["type"] == "jaeger" and _resolve(services, jaeger["url"]) == {"jaeger"}
    assert [ds["uid"] for ds in datasources if ds.get("isDefault")] == ["prometheus"]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "jaeger"} in destinations
    assert all(d["datasourceUid"] in by_uid for d in destinations)


def test_dashboard_provider_is_a_file_provider() -> None:
    providers = _yaml(PROVIDERS)["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # inside collapsed rows
    return panels


def _targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in _panels(dashboard) for target in panel.get("targets", [])]


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "mistral-metrics"
    assert dashboard["title"] == "Mistral.rs / Ollama proxy"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "id" not in dashboard or dashboard["id"] is None, "a provisioned dashboard carries no database id"


def test_dashboard_panels_have_unique_ids_and_queries(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel.get("title") and panel.get("gridPos"), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"stat", "timeseries", "gauge", "bargauge", "table"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert any(target.get("expr") for target in panel.get("targets", [])), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_targets_use_the_prometheus_datasource(dashboard: dict[str, Any]) -> None:
    for panel, target in _targets(dashboard):
        assert target["datasource"]["uid"] == "prometheus", panel["title"]
        assert target["datasource"].get("type", "prometheus") == "prometheus", panel["title"]


def test_dashboard_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) >= {"job", "instance", "model", "upstream"}

    def query(name: str) -> str:
        q = variables[name]["query"]
        return str(q["query"] if isinstance(q, dict) else q)

    assert query("job") == "label_values(mistral_http_requests_total, job)"
    assert query("instance") == 'label_values(mistral_http_requests_total{job=~"$job"}, instance)'
    assert query("model") == 'label_values(mistral_generate_tokens_total{job=~"$job"}, model)'
    assert query("upstream") == 'label_values(mistral_upstream_up{job=~"$job"}, upstream)'
    for name in ("instance", "model", "upstream"):
        assert variables[name]["includeAll"] and variables[name]["multi"], name
    assert not variables["job"].get("multi"), "one job at a time: the scrape and OTLP paths carry the same series"
    for v in variables.values():
        assert v["datasource"]["uid"] == "prometheus"


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


def _used_variables(text: str) -> set[str]:
    return {name for groups in _VARIABLE.findall(text) for name in groups if name}


def test_dashboard_uses_only_defined_variables(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    texts = [target["expr"] for _, target in _targets(dashboard)]
    texts += [str(v.get("query")) for v in dashboard["templating"]["list"]]
    for text in texts:
        for name in _used_variables(text):
            assert name.startswith("__") or name in defined, f"${name} in {text}"
    assert "$__rate_interval" in " ".join(texts)


def test_dashboard_filters_every_proxy_series(dashboard: dict[str, Any]) -> None:
    for panel, target in _targets(dashboard):
        expr = target["expr"]
        if 'job="mistralrs"' in expr:
            continue
        for selector in re.findall(r"[A-Za-z_:][\w:]*\{([^}]*)\}", expr):
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, (panel["title"], expr)
        assert not re.search(r"\[\d+[smhdwy]\]", expr), f"{panel['title']}: use $__rate_interval or $__range"


def _readme_series() -> dict[str, set[str]]:
    """The proxy's series and their labels, from the README's Telemetry table (the contract)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("### Traces", 1)[0]
    genai = set(re.findall(r"`(\w+)`", section.split("**GenAI labels**", 1)[1].split("\n- ", 1)[0]))
    series = {}
    for row in re.findall(r"^\| `(\w+)` \|[^|]*\|([^|]*)\|", section, flags=re.MULTILINE):
        name, labels = row
        series[name] = set(re.findall(r"`(\w+)`", labels)) | (genai if "GenAI labels" in labels else set())
    return series


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    found = []
    for name, matchers in re.findall(r"([A-Za-z_:][\w:]*)\{([^}]*)\}", expr):
        found.append((name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def test_dashboard_series_and_labels_exist(dashboard: dict[str, Any]) -> None:
    """Every series is one the proxy (README) or mistral.rs (its source) exports, filtered by labels it has."""
    known = _readme_series()
    assert "mistral_http_requests_total" in known and "model" in known["mistral_generate_tokens_total"]
    known.update(MISTRALRS_SERIES)
    known["up"] = set()
    exprs = [target["expr"] for _, target in _targets(dashboard)]
    for variable in dashboard["templating"]["list"]:
        query = str(variable["query"]["query"])
        match = re.fullmatch(r"label_values\(([A-Za-z_:][\w:]*)(\{[^}]*\})?, *(\w+)\)", query)
        assert match, query
        assert match.group(1) in known and match.group(3) in known[match.group(1)] | TARGET_LABELS, query
        exprs.append(match.group(1) + (match.group(2) or "{}"))
    for expr in exprs:
        selectors = _selectors(expr)
        assert selectors, expr
        for name, labels in selectors:
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in known:
                    base = name.removesuffix(suffix)
            assert base in known, f"unknown series {name} in {expr}"
            allowed = known[base] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
            assert labels <= allowed, f"{name} has no label {labels - allowed}: {expr}"


def test_dashboard_panels_cover_the_contract(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(target["expr"] for _, target in _targets(dashboard))
    for series in (
        "up{",
        "mistral_active_requests",
        "mistral_http_requests_total",
        "mistral_http_request_duration_seconds_bucket",
        "mistral_generate_duration_seconds_bucket",
        "mistral_generate_tokens_total",
        "mistral_streaming_chunks_total",
        "mistral_model_load_duration_seconds",
        "mistral_upstream_up",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "mistralrs_time_to_first_token_seconds_bucket",
        "mistralrs_inter_token_latency_seconds_bucket",
        "mistralrs_sequences_running",
        "mistralrs_sequences_waiting",
        "mistralrs_tokens_processed_total",
        "mistralrs_kv_cache_blocks_used",
    ):
        assert series in exprs, series
    assert re.search(r'error_type=~"upstream_\.\*\|internal"', exprs), "service errors: upstream_* and internal"
    titles = {panel["title"] for panel in _panels(dashboard)}
    assert "mistral.rs engine" in titles
    upstreams = [target["expr"] for panel, target in _targets(dashboard) if "per upstream" in panel["title"]]
    # The GenAI series name the upstream in the proxy's namespace (ollama_proxy.upstream), the mistral_* ones plainly.
    label = {expr: "ollama_proxy_upstream" if "gen_ai_" in expr else "upstream" for expr in upstreams}
    assert len(upstreams) == 4 and all(f'{label[e]}=~"$upstream"' in e and f"by ({label[e]}" in e for e in upstreams)


def test_dashboard_latency_targets_show_exemplars(dashboard: dict[str, Any]) -> None:
    latency = [
        (panel, target)
        for panel, target in _targets(dashboard)
        if re.search(r"histogram_quantile\(.*\b(mistral|gen_ai)_\w+_bucket", target["expr"])
    ]
    assert latency
    for panel, target in latency:
        assert panel["type"] == "timeseries" and target.get("exemplar") is True, panel["title"]


def test_dashboard_queries_are_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = program("promtool")
    values = {"__rate_interval": "1m", "__range": "1h", "__interval": "15s", "job": "mistral"}
    rules = []
    for panel, target in _targets(dashboard):
        expr = re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), ".*"), target["expr"])
        rules.append({"record": f"panel:{panel['id']}:{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------- Alertmanager


def test_alertmanager_config_is_minimal_and_valid() -> None:
    config = _yaml(ALERTMANAGER)
    receivers = [receiver["name"] for receiver in config["receivers"]]
    assert len(receivers) == len(set(receivers))
    route = config["route"]
    assert route["receiver"] in receivers
    assert {"alertname", "job"} <= set(route["group_by"])
    for child in route.get("routes", []):
        assert child.get("receiver", route["receiver"]) in receivers
    amtool = program("amtool")  # the Alertmanager version compose runs
    result = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_no_docker_stack_runs_the_quota_store_as_compose_does(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    stack = Stack(tmp_path, tmp_path, Ports.free(), "http://127.0.0.1:9", replicas=2)
    store = stack.programs["quota-store"]
    assert store.command[1:] == ["--port", store.ready.split(":")[2].split("/")[0], "--bind", "127.0.0.1",
                                 *services["quota-store"]["command"][1:]]  # fmt: skip
    assert list(stack.programs).index("quota-store") < list(stack.programs).index("proxy-1")  # started before them
    assert {stack.programs[name].env["QUOTA_STORE_URL"] for name in ("proxy-1", "proxy-2")} == {store.ready}
    assert "quota-store" not in Stack(tmp_path / "one", tmp_path, Ports.free(), "http://127.0.0.1:9").programs
