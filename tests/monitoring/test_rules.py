"""The Prometheus rules in monitoring/prometheus: promtool accepts them, their unit tests pass, every alert is
complete and is tested both firing and silent."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.programs import program

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
RULES = PROMETHEUS / "rules" / "mistral-alerts.yml"
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
RUNBOOK_URL = "https://github.com/mistral-ollama-proxy/mistral-ollama-proxy/blob/main/README.md#alerts"

SERVICE_ERROR_TYPES = {
    "upstream_unavailable",
    "upstream_timeout",
    "upstream_busy",
    "upstream_status",
    "upstream_protocol",
    "upstream_error",
    "internal",
    "overloaded",
    "queue_timeout",
    "shutting_down",
}
# name: (severity, for)
ALERTS = {
    "MistralHighLatency": ("warning", "5m"),
    "MistralVeryHighLatency": ("critical", "5m"),
    "MistralHighErrorRate": ("critical", "5m"),
    "MistralDown": ("critical", "1m"),
    "MistralHighActiveRequests": ("warning", "5m"),
    "MistralSlowGeneration": ("warning", "5m"),
    "MistralNoRequests": ("info", "5m"),
    "MistralUpstreamDown": ("warning", "1m"),
    "MistralAllUpstreamsDown": ("critical", "1m"),
    "MistralSlowTimeToFirstToken": ("warning", "10m"),
    "MistralErrorBudgetBurnFast": ("critical", "2m"),
    "MistralErrorBudgetBurnSlow": ("warning", "15m"),
    "MistralEventLoopStalled": ("warning", "5m"),
    "MistralTenantThrottled": ("warning", "10m"),
    "MistralTenantNearTokenQuota": ("info", "5m"),
}
# Only these are about the direct scrape target and may name its job.
SCRAPE_TARGET_ALERTS = {"MistralDown", "MistralNoRequests"}
RECORDING_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+")
RECORDED_REFERENCE = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+")


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = program("promtool")  # the same version as the Prometheus the tests and compose run
    return subprocess.run(
        [promtool, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=100, check=False
    )


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


def _rules() -> Iterator[tuple[str, dict[str, Any]]]:
    for group in _load(RULES)["groups"]:
        for rule in group["rules"]:
            yield group["name"], rule


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for _, rule in _rules() if "alert" in rule}


def _alert_cases() -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """(alertname, where, exp_alerts) for every alert_rule_test in every test file."""
    for path in TEST_FILES:
        for test in _load(path)["tests"]:
            for case in test.get("alert_rule_test") or []:
                where = f"{path.name}: {test.get('name', '?')} @ {case['eval_time']}"
                yield case["alertname"], where, case.get("exp_alerts") or []


def test_there_are_test_files() -> None:
    assert [path.name for path in TEST_FILES][:1] == ["mistral-alerts.test.yml"]
    assert len(TEST_FILES) >= 2


def test_promtool_check_rules_accepts_the_rules() -> None:
    done = _promtool("check", "rules", RULES.relative_to(ROOT))
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(1 for _ in _rules())
    assert f"SUCCESS: {count} rules found" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=[path.name for path in TEST_FILES])
def test_promtool_unit_tests_pass(path: Path) -> None:
    done = _promtool("test", "rules", path.relative_to(ROOT))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"Processing test file: {path.relative_to(ROOT)}\n  SUCCESS" in output
    assert "FAILED" not in output


def test_promtool_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected severity changed makes promtool exit 1."""
    source = TEST_FILES[0]
    text = source.read_text(encoding="utf-8").replace("../rules/mistral-alerts.yml", str(RULES))
    broken = text.replace("severity: critical", "severity: page", 1)
    assert broken != text
    target = tmp_path / source.name
    target.write_text(broken, encoding="utf-8")
    done = _promtool("test", "rules", target)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout + done.stderr
    assert 'severity="page"' in done.stdout + done.stderr


def test_the_alerts_are_the_expected_ones_with_their_severity_and_for() -> None:
    alerts = _alerts()
    assert {name: (rule["labels"]["severity"], rule.get("for")) for name, rule in alerts.items()} == ALERTS


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_labels_and_annotations(name: str) -> None:
    rule = _alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook", "runbook_url"}
    assert annotations["summary"].strip()
    assert "$value" in annotations["description"], "the description shows the value"
    assert "$labels.job" in annotations["description"], "the description names the job"
    assert len(annotations["runbook"].split()) >= 8, "the runbook says what to check first"
    assert annotations["runbook_url"] == RUNBOOK_URL


def test_recording_rule_names_are_level_metric_operations() -> None:
    records = [rule["record"] for _, rule in _rules() if "record" in rule]
    assert len(records) == len(set(records))
    for record in records:
        assert RECORDING_NAME.fullmatch(record), record
    windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert {f"mistral:availability_errors:ratio_rate{window}" for window in windows} <= set(records)
    assert {
        "mistral:http_requests:rate5m",
        "mistral:http_service_errors:rate5m",
        "mistral:http_request_duration_seconds:p95_5m",
    } <= set(records)


def test_alerts_read_only_records_of_their_own_group_defined_before_them() -> None:
    """Across groups an alert could read the previous round's value, and promtool's group order is random."""
    seen: dict[str, set[str]] = {}
    for group, rule in _rules():
        recorded = seen.setdefault(group, set())
        for reference in RECORDED_REFERENCE.findall(rule["expr"]):
            assert reference in recorded, f"{rule.get('alert') or rule.get('record')} reads {reference}"
        if "record" in rule:
            recorded.add(rule["record"])


def test_service_errors_are_the_service_side_error_types() -> None:
    """Classified by error_type; status only drops a 4xx (mistral.rs rejecting the request, relayed)."""
    selectors = [
        selector
        for _, rule in _rules()
        for selector in re.findall(r"mistral_http_requests_total\{([^}]*)\}", rule["expr"])
        if "error_type" in selector
    ]
    assert len(selectors) == 8  # the 5m error rate and the seven availability windows
    for selector in selectors:
        matchers = [matcher.strip() for matcher in selector.split(",") if matcher.strip()]
        assert len(matchers) == 2, selector
        error_types = re.fullmatch(r'error_type=~"([^"]*)"', matchers[0])
        assert error_types, selector
        assert set(error_types.group(1).split("|")) == SERVICE_ERROR_TYPES
        assert matchers[1] == 'status!~"4.."'


def test_rules_aggregate_by_job_and_name_no_job_except_the_scrape_target() -> None:
    for _, rule in _rules():
        name = rule.get("alert") or rule["record"]
        expr = rule["expr"]
        for clause in re.findall(r"\bby \(([^)]*)\)", expr):
            assert "job" in [label.strip() for label in clause.split(",")], f"{name}: by ({clause})"
        if name not in SCRAPE_TARGET_ALERTS:
            assert "job=" not in expr.replace(" ", ""), name


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: dict[str, list[str]] = {}
    silent: dict[str, list[str]] = {}
    for alertname, where, expected in _alert_cases():
        assert alertname in ALERTS, f"{where}: unknown alert {alertname} (an empty expectation would pass)"
        (firing if expected else silent).setdefault(alertname, []).append(where)
        for alert in expected:
            assert alert["exp_labels"]["severity"] == ALERTS[alertname][0], where
            assert "summary" in alert.get("exp_annotations", {}), where
    assert sorted(set(ALERTS) - set(firing)) == [], "alerts never expected to fire"
    assert sorted(set(ALERTS) - set(silent)) == [], "alerts never expected to stay silent"
