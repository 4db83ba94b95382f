"""``mistral-ollama-proxy check``: is the monitoring stack seeing the proxy? (The original test-monitoring.sh.)

It checks every endpoint, sends a little traffic (with a known trace id), verifies the metrics are exposed,
asks Prometheus for the scrape target and the series, and prints where to look: dashboard and trace. Given the
Collector, it checks its health and that the proxy's series reach Prometheus through it; given Jaeger, that the
trace of the test traffic arrived there.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from otel.metrics import INSTRUMENTS

__all__ = ["REQUIRED_SERIES", "Check", "run_check"]

# Every series the monitoring check's own traffic makes appear, from the instruments' one specification.
REQUIRED_SERIES = tuple(spec.series for spec in INSTRUMENTS if spec.checked)
DASHBOARD_UID = "mistral-metrics"
_TENANT = re.compile(r'^mistral_tenant_requests_total\{[^}]*\btenant="([^"]*)"', re.MULTILINE)


@dataclass
class Check:
    proxy: str
    prometheus: str | None = None
    grafana: str | None = None
    jaeger: str | None = None
    job: str = "mistral"
    timeout: float = 60.0
    collector: str | None = None
    # Series pushed by OTLP carry job = service.name once the Collector re-exposes them.
    otlp_job: str = "mistral-ollama-proxy"
    say: Callable[[str], None] = print
    failures: list[str] = field(default_factory=list)
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    api_key: str | None = None  # for a proxy with API keys (the traffic then counts for that key's tenant)
    metrics_token: str | None = None

    def result(self, name: str, ok: bool, detail: str) -> bool:
        self.say(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        if not ok:
            self.failures.append(name)
        return ok


def _wait(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := condition():
                return value
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(1.0)


def _proxy(check: Check, http: httpx.Client) -> str | None:
    root = http.get("/")
    check.result("proxy liveness", root.text == "Ollama is running", f"GET / → {root.status_code} {root.text!r}")
    version = http.get("/api/version").json().get("version", "")
    check.result("proxy version", bool(version) and version.replace(".", "").isdigit(), f"/api/version → {version}")
    models = [m["model"] for m in http.get("/api/tags").json().get("models", [])]
    check.result("models served", bool(models), ", ".join(models) or "none")
    return models[0] if models else None


def _traffic(check: Check, http: httpx.Client, model: str) -> None:
    headers = {"traceparent": f"00-{check.trace_id}-{secrets.token_hex(8)}-01"}
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "options": {"num_predict": 8}}
    answer = http.post("/api/chat", json={**body, "stream": False}, headers=headers)
    ok = answer.status_code == 200 and answer.json().get("done") is True
    check.result("chat (not streamed)", ok, f"{answer.status_code}, eval_count={answer.json().get('eval_count')}")
    lines = http.post("/api/chat", json=body).text.splitlines()
    check.result("chat (streamed)", bool(lines) and '"done":true' in lines[-1], f"{len(lines)} NDJSON lines")
    answer = http.post(
        "/api/generate", json={"model": model, "prompt": "Hi", "stream": False, "options": body["options"]}
    )
    check.result("generate", answer.status_code == 200, f"{answer.status_code}")


def _metrics(check: Check, http: httpx.Client) -> None:
    scrape = {"authorization": f"Bearer {check.metrics_token}"} if check.metrics_token else {}
    text = http.get("/metrics", headers=scrape).text
    missing = [name for name in REQUIRED_SERIES if f"\n{name}" not in text and not text.startswith(name)]
    check.result("metrics exposed", not missing, "all series present" if not missing else f"missing {missing}")
    check.result("/api/metrics", http.get("/api/metrics", headers=scrape).status_code == 200, "served")
    tenants = sorted(set(_TENANT.findall(text)))
    check.say("INFO  tenants seen: " + (", ".join(tenants) if tenants else "none (the API has no keys)"))


def _prometheus(check: Check, prometheus: str) -> None:
    with httpx.Client(base_url=prometheus, timeout=10) as http:
        check.result("prometheus ready", http.get("/-/ready").status_code == 200, prometheus)

        def target_up() -> bool:
            targets = http.get("/api/v1/targets").json()["data"]["activeTargets"]
            return any(t["labels"].get("job") == check.job and t["health"] == "up" for t in targets)

        check.result("scrape target", bool(_wait(target_up, check.timeout)), f"job {check.job} is up")
        query = f'sum(mistral_http_requests_total{{job="{check.job}"}})'

        total = _wait(lambda: _value(http, query), check.timeout)
        check.result("series in prometheus", total is not None, f"{query} = {total}")
        if check.collector:
            query = f'sum(mistral_http_requests_total{{job="{check.otlp_job}"}})'
            total = _wait(lambda: _value(http, query), check.timeout)
            check.result("series through the collector", total is not None, f"{query} = {total}")


def _value(http: httpx.Client, query: str) -> float | None:
    result = http.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _collector(check: Check, collector: str) -> None:
    try:
        health = httpx.get(collector, timeout=10)
        check.result("collector health", health.status_code == 200, f"GET {collector} → {health.status_code}")
    except httpx.TransportError as exc:
        check.result("collector health", False, f"{collector} unreachable ({type(exc).__name__}): is it running?")


def _trace(check: Check, jaeger: str) -> None:
    url = f"{jaeger.rstrip('/')}/api/traces/{check.trace_id}"

    def spans() -> int:
        response = httpx.get(url, timeout=10)
        return sum(len(trace["spans"]) for trace in response.json()["data"]) if response.status_code == 200 else 0

    found = _wait(spans, check.timeout)
    check.result("trace in jaeger", bool(found), f"{found} spans" if found else f"{url} not found")


def run_check(check: Check) -> bool:
    """Run every check, printing PASS/FAIL lines and the links; true when everything passed."""
    try:
        keyed = {"authorization": f"Bearer {check.api_key}"} if check.api_key else {}
        with httpx.Client(base_url=check.proxy, timeout=check.timeout, headers=keyed) as http:
            model = _proxy(check, http)
            if model:
                _traffic(check, http, model)
            _metrics(check, http)
        if check.collector:
            _collector(check, check.collector)
        if check.prometheus:
            _prometheus(check, check.prometheus)
        if check.jaeger:
            _trace(check, check.jaeger)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        check.result("reachable", False, f"{type(exc).__name__}: {exc}")
    if check.grafana:
        check.say(f"dashboard: {check.grafana.rstrip('/')}/d/{DASHBOARD_UID}")
    if check.jaeger:
        check.say(f"trace:     {check.jaeger.rstrip('/')}/trace/{check.trace_id}")
    check.say("result: " + ("all checks passed" if not check.failures else f"{len(check.failures)} failed"))
    return not check.failures
