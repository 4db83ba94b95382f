"""The Helm chart (deploy/helm): `helm lint`, then `helm template` rendered with the defaults and with every option,
each object checked against the Kubernetes schemas (1.30, the chart's floor, and 1.37), the ServiceMonitor against
the Prometheus Operator's CRD, and the upstreams file it mounts read by the proxy's own parser."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.upstream.endpoints import Endpoint, endpoints_from_file
from tests.programs import programs

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "mistral-ollama-proxy"
KUBERNETES = ("1.30.0", "1.37.0")
EVERYTHING = [
    "--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=kube-prometheus-stack",
    "--set", "otel.collector.endpoint=http://otel-collector.monitoring:4317",
    "--set", "otel.tracesSampler=parentbased_traceidratio", "--set", "otel.tracesSamplerArg=0.1",
    "--set", "env.MODEL_ALIASES=mistral:latest=mistralai/Mistral-7B-Instruct-v0.3",
    "--set-json", 'upstreams=[{"url":"http://gpu-a:8080","name":"gpu-a","weight":2},{"url":"http://gpu-b:8080"}]',
    "--set", "tenants.keysSecret=llm-tenants", "--set", "tenants.quotaStoreUrl=redis://redis.ai:6379/0",
]  # fmt: skip


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(programs() / "helm"), *args], capture_output=True, text=True, timeout=120, check=False)


def _render(*values: str) -> dict[str, dict[str, Any]]:
    done = _helm("template", "llm", str(CHART), "--namespace", "ai", *values)
    assert done.returncode == 0, done.stderr
    return {doc["kind"]: doc for doc in yaml.safe_load_all(done.stdout) if doc}


def _servicemonitor_schema() -> dict[str, Any]:
    crd = yaml.safe_load((programs() / "monitoring.coreos.com_servicemonitors.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_helm_lint_passes_strict() -> None:
    done = _helm("lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", [[], EVERYTHING], ids=["defaults", "every-option"])
def test_every_rendered_object_meets_the_kubernetes_schemas(values: list[str]) -> None:
    objects = _render(*values)
    expected = {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert set(objects) == expected | ({"ServiceMonitor"} if values else set())
    for kind, body in objects.items():
        if kind == "ServiceMonitor":
            jsonschema.validate(body, _servicemonitor_schema())
            continue
        for version in KUBERNETES:
            kubernetes_validate.validate(body, version, strict=True)


def test_a_misspelt_field_is_caught_by_the_schema_check() -> None:
    """The check can fail: an unknown field in a probe, or a wrong type in the ServiceMonitor."""
    deployment = _render()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/ready"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[0], strict=True)
    monitor = _render(*EVERYTHING)["ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["interval"] = 15
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, _servicemonitor_schema())


def test_the_deployment_drains_probes_and_names_each_pod(tmp_path: Path) -> None:
    objects = _render(*EVERYTHING)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]) == (
        "/ready",
        "/health",
    )
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert pod["terminationGracePeriodSeconds"] == 50  # preStop 10 + the proxy's drain 30 + 10
    assert env["GRACEFUL_TIMEOUT_SECS"] == "30"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "service.instance.id=$(POD_NAME),k8s.pod.name=$(POD_NAME)"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4317"
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus"  # traces pushed, metrics scraped: counted once
    assert env["MODEL_ALIASES"] == "mistral:latest=mistralai/Mistral-7B-Instruct-v0.3"
    # The mounted upstreams file is one the proxy reads.
    upstreams = tmp_path / "upstreams.yaml"
    upstreams.write_text(objects["ConfigMap"]["data"]["upstreams.yaml"])
    assert env["MISTRAL_UPSTREAMS_FILE"] == "/etc/mistral-ollama-proxy/upstreams.yaml"
    assert endpoints_from_file(str(upstreams)) == (Endpoint("http://gpu-a:8080", "gpu-a", 2.0),
                                                   Endpoint("http://gpu-b:8080"))  # fmt: skip
    # Tenants: the keys file from its Secret, the shared quota store.
    assert env["API_KEYS_FILE"] == "/etc/mistral-ollama-proxy/tenants/keys.yaml"
    assert env["QUOTA_STORE_URL"] == "redis://redis.ai:6379/0"
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["tenants"] == "/etc/mistral-ollama-proxy/tenants"
    assert {"name": "tenants", "secret": {"secretName": "llm-tenants"}} in pod["volumes"]
    assert objects["HorizontalPodAutoscaler"]["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    endpoint = objects["ServiceMonitor"]["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], objects["ServiceMonitor"]["metadata"]["labels"]["release"]) == (
        "http",
        "/metrics",
        "kube-prometheus-stack",
    )


def test_without_autoscaling_the_replica_count_is_fixed_and_no_upstream_is_refused() -> None:
    objects = _render("--set", "autoscaling.enabled=false", "--set", "replicaCount=3")
    assert "HorizontalPodAutoscaler" not in objects and objects["Deployment"]["spec"]["replicas"] == 3
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    names = {item["name"] for item in pod["containers"][0]["env"]}
    assert not names & {"API_KEYS_FILE", "QUOTA_STORE_URL"} and "tenants" not in {v["name"] for v in pod["volumes"]}
    done = _helm("template", "llm", str(CHART), "--set-json", "upstreams=[]")
    assert done.returncode != 0 and "at least one upstream (values: upstreams)" in done.stderr
