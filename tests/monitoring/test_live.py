"""A real Prometheus on loopback scrapes a live proxy: the dashboard's queries, the rules, and the check command."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import yaml

from app.commands.check import Check, run_check
from app.settings import Settings
from tests.emulator import Emulator, Reply
from tests.processes import free_port
from tests.programs import program
from tests.servers import Server
from tests.waiting import eventually

ROOT = Path(__file__).parent.parent.parent
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "mistral-metrics.json"
VARIABLES = {"$job": "mistral", "$instance": ".*", "$model": ".*", "$upstream": ".*", "$__rate_interval": "1m",
             "$__range": "5m", "$__interval": "15s"}  # fmt: skip
HI = [{"role": "user", "content": "hi"}]
# Two teams, so that the dashboard's Tenants row has data; team-b's second request a minute is refused.
TEAMS = (
    "tenants:\n  - {name: team-a, keys: [key-a]}\n  - {name: team-b, keys: [key-b], limits: {requests_per_minute: 1}}\n"
)


@pytest.fixture
def settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The suite's settings, with the two teams' keys."""
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    path.write_text(TEAMS)
    return dataclasses.replace(settings, api_keys_file=str(path))


def _config(proxy: Server, upstream: Server) -> dict[str, Any]:
    """The shipped prometheus.yml, pointed at the live proxy and emulator, scraping every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    config.pop("alerting")
    live = {"mistral": f"127.0.0.1:{proxy.port}", "mistralrs": f"127.0.0.1:{upstream.port}"}
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in live]
    for job in jobs:
        job["scrape_timeout"] = "1s"  # may not exceed the interval
        job.pop("dns_sd_configs", None)  # compose's discovery of the proxies: here the one live proxy
        job["static_configs"] = [{**static, "targets": [live[job["job_name"]]]}
                                 for static in job.get("static_configs", [{}])]  # fmt: skip
    config["scrape_configs"] = jobs
    return config


@pytest.fixture
def prometheus(proxy: Server, upstream: Server, tmp_path: Path) -> Iterator[str]:
    binary = program("prometheus")  # Prometheus 3, built at the version compose runs
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_config(proxy, upstream)))
    port = free_port()
    command = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url) as http:

            def ready() -> bool:
                try:
                    return http.get("/-/ready").status_code == 200
                except httpx.TransportError:
                    return False

            eventually(ready, within=30.0, every=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def traffic(proxy: Server, emulator: Emulator, prometheus: str) -> str:
    """Requests of every kind the dashboard shows, then wait until Prometheus has scraped them."""
    with ollama.Client(host=proxy.url, headers={"Authorization": "Bearer key-a"}) as client:
        client.chat(model="mistral", messages=HI)
        list(client.chat(model="Qwen/Qwen3-4B", messages=HI, stream=True))  # loads the unloaded model
        list(client.generate(model="mistral", prompt="hi", stream=True))
        emulator.script(Reply(content="a b c", error_after=1))
        with pytest.raises(ollama.ResponseError):
            client.chat(model="mistral", messages=HI)
    with ollama.Client(host=proxy.url, headers={"Authorization": "Bearer key-b"}) as client:
        client.chat(model="mistral", messages=HI)
        with pytest.raises(ollama.ResponseError) as refused:
            client.chat(model="mistral", messages=HI)
        assert refused.value.status_code == 429
    with httpx.Client(base_url=prometheus) as http:

        def scraped() -> bool:
            query = 'sum(mistral_http_requests_total{job="mistral"})'
            result = http.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) >= 4

        eventually(scraped, within=30.0, every=0.2)
        time.sleep(2.5)  # a second sample for every rate()
    return prometheus


def _query(prometheus: str, expr: str) -> list[Any]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = []
    for panel in dashboard["panels"]:
        panels.extend(panel.get("panels", []))
        panels.append(panel)
    return [panel for panel in panels if panel.get("targets")]


def _substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_query_evaluates_and_the_proxys_panels_have_data(traffic: str) -> None:
    empty = []
    for panel in _panels():
        for target in panel["targets"]:
            result = _query(traffic, _substitute(target["expr"]))
            engine_only = "mistralrs_" in target["expr"] and "mistral_" not in target["expr"].replace("mistralrs_", "")
            if not result and not engine_only:
                empty.append((panel["title"], target["expr"]))
    assert empty == []


def test_every_rule_expression_evaluates(traffic: str) -> None:
    rules = [rule for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]  # fmt: skip
    assert rules
    for rule in rules:
        _query(traffic, rule["expr"])
    loaded = httpx.get(f"{traffic}/api/v1/rules").json()["data"]["groups"]
    evaluated = [rule for group in loaded for rule in group["rules"]]
    assert len(evaluated) == len(rules)
    eventually(lambda: all(r["health"] == "ok" for g in httpx.get(f"{traffic}/api/v1/rules").json()["data"]["groups"]
                      for r in g["rules"]))  # fmt: skip


def test_the_mistral_target_is_up_with_the_original_labels(traffic: str) -> None:
    targets = httpx.get(f"{traffic}/api/v1/targets").json()["data"]["activeTargets"]
    mistral = next(target for target in targets if target["labels"]["job"] == "mistral")
    assert mistral["health"] == "up"
    assert (mistral["labels"]["engine"], mistral["labels"]["engine_type"]) == ("mistral", "inference")
    series = _query(traffic, 'mistral_http_requests_total{job="mistral", error_type="upstream_status"}')
    assert [s["metric"]["endpoint"] for s in series] == ["/api/chat"]


def test_the_check_command_passes_against_the_live_stack(proxy: Server, prometheus: str) -> None:
    lines: list[str] = []
    check = Check(proxy.url, prometheus, "http://grafana.example:3000", say=lines.append, api_key="key-a")
    assert run_check(check), "\n".join(lines)
    assert "INFO  tenants seen: team-a" in lines
    assert all(line.startswith(("PASS", "INFO")) for line in lines[:-2]), lines
    assert lines[-2] == "dashboard: http://grafana.example:3000/d/mistral-metrics"
    assert lines[-1] == "result: all checks passed"


def test_the_check_command_exits_non_zero_when_prometheus_is_missing(proxy: Server) -> None:
    command = shutil.which("mistral-ollama-proxy")
    assert command
    dead = f"http://127.0.0.1:{free_port()}"
    # The event-loop lag's first sample comes a quarter of a second after start-up: only Prometheus may be missing.
    eventually(lambda: "mistral_event_loop_lag_seconds" in httpx.get(f"{proxy.url}/metrics").text, within=30)
    done = subprocess.run([command, "check", "--proxy", proxy.url, "--prometheus", dead, "--timeout", "2",
                           "--api-key", "key-a"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))  # fmt: skip
    assert done.returncode == 1
    assert "PASS  proxy liveness: GET / → 200 'Ollama is running'" in done.stdout
    assert "FAIL  reachable: ConnectError" in done.stdout
    assert done.stdout.endswith("result: 1 failed\n")
