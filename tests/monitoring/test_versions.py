"""One version of each program around the proxy: monitoring/versions.env pins it, scripts/build-programs.sh builds
it, compose.yaml runs its image, and the Collector build holds exactly the components collector-config.yaml uses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.stack import ROOT
from tests.programs import program

VERSIONS = ROOT / "monitoring" / "versions.env"
BUILDER = ROOT / "monitoring" / "collector" / "builder.yaml"


def _versions() -> dict[str, str]:
    lines = [line for line in VERSIONS.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _module_version(binary: str, module: str) -> str:
    """The version of ``module`` that went into ``binary``, from its embedded build information."""
    info = subprocess.run(["go", "version", "-m", binary], capture_output=True, text=True, check=True).stdout
    found = re.search(rf"^\s+(?:mod|dep)\s+{re.escape(module)}\s+(\S+)", info, re.MULTILINE)
    assert found, info[:2000]
    return found.group(1)


def test_compose_runs_the_versions_the_tests_build() -> None:
    versions = _versions()
    images = {name: service["image"] for name, service in yaml.safe_load((ROOT / "compose.yaml").read_text())[
        "services"].items() if "image" in service}  # fmt: skip
    assert images["otel-collector"] == f"otel/opentelemetry-collector-contrib:{versions['OTELCOL_VERSION']}"
    assert images["jaeger"] == f"cr.jaegertracing.io/jaegertracing/jaeger:{versions['JAEGER_VERSION']}"
    assert images["prometheus"] == f"prom/prometheus:v{versions['PROMETHEUS_VERSION']}"
    assert images["alertmanager"] == f"prom/alertmanager:v{versions['ALERTMANAGER_VERSION']}"


def test_the_builder_manifest_pins_every_component_at_the_collector_version() -> None:
    version = _versions()["OTELCOL_VERSION"]
    manifest: dict[str, Any] = yaml.safe_load(BUILDER.read_text())
    assert manifest["dist"]["version"] == version
    modules = [entry["gomod"] for kind in ("receivers", "processors", "exporters", "extensions")
               for entry in manifest[kind]]  # fmt: skip
    assert modules and all(module.endswith(f" v{version}") for module in modules), modules


def test_the_collector_build_holds_exactly_the_components_its_config_uses() -> None:
    built = yaml.safe_load(subprocess.run([program("otelcol-mop"), "components"], capture_output=True, text=True,
                                          check=True).stdout)  # fmt: skip
    config = yaml.safe_load((ROOT / "collector-config.yaml").read_text())
    for kind in ("receivers", "processors", "exporters", "extensions"):
        used = {name.split("/", 1)[0] for name in config[kind]}
        assert {component["name"] for component in built.get(kind) or []} == used, kind
    assert built["buildinfo"]["version"] == _versions()["OTELCOL_VERSION"]


@pytest.mark.parametrize(
    ("binary", "module", "key"),
    [
        ("jaeger", "github.com/jaegertracing/jaeger", "JAEGER_MODULE_VERSION"),
        ("alertmanager", "github.com/prometheus/alertmanager", "ALERTMANAGER_VERSION"),
        ("otelcol-mop", "go.opentelemetry.io/collector/receiver/otlpreceiver", "OTELCOL_VERSION"),
    ],
)
def test_each_binary_is_built_from_the_pinned_module(binary: str, module: str, key: str) -> None:
    assert _module_version(program(binary), module) == f"v{_versions()[key]}"


def test_prometheus_and_promtool_report_the_pinned_version() -> None:
    version = _versions()["PROMETHEUS_VERSION"]
    for binary in ("prometheus", "promtool"):
        done = subprocess.run([program(binary), "--version"], capture_output=True, text=True, check=True)
        assert f"version {version}" in (done.stdout + done.stderr).splitlines()[0], done.stdout + done.stderr


def test_jaeger_reports_the_pinned_version() -> None:
    done = subprocess.run([program("jaeger"), "version"], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[-1])["gitVersion"] == f"v{_versions()['JAEGER_VERSION']}"


@pytest.mark.parametrize(("binary", "config"), [("otelcol-mop", "collector-config.yaml"),
                                                ("jaeger", "monitoring/jaeger/config.yaml")])  # fmt: skip
def test_the_real_programs_accept_the_repositorys_configs(binary: str, config: str) -> None:
    done = subprocess.run([program(binary), "validate", "--config", f"file:{Path(ROOT, config)}"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
