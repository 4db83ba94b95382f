"""The resource every signal carries: service name, version and one instance id per process, or the operator's."""

from __future__ import annotations

import pytest

from otel.setup import configure


def _attributes(environ: dict[str, str]) -> dict[str, object]:
    telemetry = configure("1.2.3", environ=environ)
    try:
        return dict(telemetry.tracer_provider.resource.attributes)  # type: ignore[attr-defined]
    finally:
        telemetry.shutdown()


def test_each_process_is_its_own_instance_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    first, second = _attributes({}), _attributes({})
    assert (first["service.name"], first["service.version"]) == ("mistral-ollama-proxy", "1.2.3")
    ids = [str(attributes["service.instance.id"]) for attributes in (first, second)]
    assert [len(found) for found in ids] == [36, 36] and ids[0] != ids[1]


def test_the_operators_resource_attributes_win_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod name as service.instance.id (the Helm chart sets it) keeps one series per pod."""
    declared = "service.instance.id=proxy-7d9f-x2k4,k8s.pod.name=proxy-7d9f-x2k4,team=llm%20platform,service.name=ours"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", declared)
    attributes = _attributes({"OTEL_RESOURCE_ATTRIBUTES": declared})
    assert {key: attributes[key] for key in ("service.name", "service.instance.id", "k8s.pod.name", "team")} == {
        "service.name": "ours",
        "service.instance.id": "proxy-7d9f-x2k4",
        "k8s.pod.name": "proxy-7d9f-x2k4",
        "team": "llm platform",
    }
    named = _attributes({"OTEL_RESOURCE_ATTRIBUTES": declared, "OTEL_SERVICE_NAME": "theirs"})
    assert named["service.name"] == "theirs"  # OTEL_SERVICE_NAME wins, as the specification says
