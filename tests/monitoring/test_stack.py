"""The no-Docker stack (scripts/stack.py) runs Prometheus with the repository's config, changed in addresses only."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from scripts.stack import PROMETHEUS_CONFIG, ROOT, RULES, prometheus_config
from tests.emulator import Emulator
from tests.programs import programs
from tests.servers import serve_in_thread

LOCAL = {"proxy:11434": "127.0.0.1:1001", "otel-collector:8889": "127.0.0.1:1002",
         "alertmanager:9093": "127.0.0.1:1003", "mistralrs:8080": "127.0.0.1:1004"}  # fmt: skip


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str) for d in _differences(a.get(key), b.get(key),
                f"{path}.{key}")]  # fmt: skip
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def test_only_addresses_and_the_rules_path_change() -> None:
    original = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    generated = prometheus_config(LOCAL, str(RULES / "*.yml"))
    assert _differences(original, generated) == [
        ".alerting.alertmanagers[0].static_configs[0].targets[0]: 'alertmanager:9093' -> '127.0.0.1:1003'",
        f".rule_files[0]: 'rules/*.yml' -> '{RULES}/*.yml'",
        # compose finds the proxies by DNS; the stack knows their addresses
        ".scrape_configs[0].dns_sd_configs: [{'names': ['proxy'], 'type': 'A', 'port': 11434, 'refresh_interval': "
        "'15s'}] -> None",
        ".scrape_configs[0].static_configs: None -> [{'targets': ['127.0.0.1:1001']}]",
        ".scrape_configs[1].static_configs[0].targets[0]: 'otel-collector:8889' -> '127.0.0.1:1002'",
        ".scrape_configs[2].static_configs[0].targets[0]: 'mistralrs:8080' -> '127.0.0.1:1004'",
    ]


def test_each_replica_is_a_target_of_its_own() -> None:
    generated = prometheus_config({**LOCAL, "proxy:11434": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "rules/*.yml")
    assert generated["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:2001", "127.0.0.1:2002"]}]


def test_without_a_mistralrs_server_its_job_is_left_out() -> None:
    generated = prometheus_config({**LOCAL, "mistralrs:8080": None}, str(RULES / "*.yml"))
    assert [job["job_name"] for job in generated["scrape_configs"]] == ["mistral", "otel-collector"]


def test_an_address_the_stack_does_not_know_is_an_error() -> None:
    try:
        prometheus_config({k: v for k, v in LOCAL.items() if k != "proxy:11434"}, "rules/*.yml")
    except KeyError as exc:
        assert exc.args == ("proxy:11434",)
    else:
        raise AssertionError("an unmapped target was kept")


def test_the_stack_command_prints_its_urls_serves_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    programs()  # built before the clock of the command starts
    with serve_in_thread(Emulator().app) as upstream:
        command = [sys.executable, str(ROOT / "scripts" / "stack.py"), "--free-ports", "--mistral-url", upstream.url,
                   "--workdir", str(tmp_path)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines: list[str] = []
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("Ctrl-C stops everything."):
                    break
            urls = dict(re.findall(r"^(Ollama API \(the proxy\)|Prometheus|Alertmanager|Jaeger query API)\s+(\S+)",
                                   "\n".join(lines), re.MULTILINE))  # fmt: skip
            assert set(urls) == {"Ollama API (the proxy)", "Prometheus", "Alertmanager", "Jaeger query API"}, lines
            assert httpx.get(urls["Ollama API (the proxy)"]).text == "Ollama is running"
            assert httpx.get(f"{urls['Prometheus']}/-/ready").status_code == 200
            assert httpx.get(f"{urls['Alertmanager']}/-/ready").status_code == 200
            assert httpx.get(urls["Jaeger query API"]).json()["errors"] is None
            children = _children(process.pid)
            assert len(children) == 5, children
            process.send_signal(signal.SIGINT)
            assert process.wait(60) == 0
            assert all(not Path(f"/proc/{pid}").exists() for pid in children)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _children(pid: int) -> list[int]:
    found = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return found
