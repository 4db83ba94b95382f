"""The OpenAPI description at /api/openapi.json: valid, complete, and true of what the proxy answers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from app.routes import ROUTES
from app.routes.openapi import document
from tests.emulator import Emulator, Reply

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def spec(http: httpx.Client) -> dict[str, Any]:
    served = http.get("/api/openapi.json")
    assert served.status_code == 200
    spec: dict[str, Any] = served.json()
    return spec


def _check(spec: dict[str, Any], name: str, instance: Any) -> None:
    """Validate against a component; its `#/components/...` references resolve within the same root."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_the_served_document_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec == json.loads(json.dumps(document()))
    assert spec["openapi"] == "3.1.0" and spec["info"]["title"] == "mistral-ollama-proxy"


def test_every_route_is_described_and_nothing_else(spec: dict[str, Any]) -> None:
    served: set[tuple[str, str]] = set()
    for route in ROUTES:
        methods = {method.lower() for method in getattr(route, "methods", ())}
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # type: ignore[attr-defined]  # OpenAPI has no converters
        served |= {(path, method) for method in methods if method != "head" or "get" not in methods}
    described = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert described == served


def test_what_the_proxy_answers_matches_the_description(
    spec: dict[str, Any], http: httpx.Client, emulator: Emulator
) -> None:
    chat = {"model": "mistral", "messages": HI, "stream": False}
    _check(spec, "ChatRequest", chat)
    _check(spec, "ChatResponse", http.post("/api/chat", json=chat).json())
    emulator.script(Reply(content="a b"))
    for line in http.post("/api/generate", json={"model": "mistral", "prompt": "x"}).text.splitlines():
        _check(spec, "GenerateResponse", json.loads(line))
    _check(spec, "ListResponse", http.get("/api/tags").json())
    _check(spec, "ProcessResponse", http.get("/api/ps").json())
    _check(spec, "ShowResponse", http.post("/api/show", json={"model": "mistral"}).json())
    _check(spec, "EmbedResponse", http.post("/api/embed", json={"model": "mistral", "input": ["a", "b"]}).json())
    _check(spec, "Version", http.get("/api/version").json())
    _check(spec, "Readiness", http.get("/ready").json())
    missing = http.post("/api/chat", json={"model": "nope", "messages": HI})
    assert missing.status_code == 404
    _check(spec, "Error", missing.json())
    with pytest.raises(jsonschema.ValidationError):  # the check can fail: a reply without its required fields
        _check(spec, "ChatResponse", {"model": "mistral"})


@pytest.mark.parametrize(
    ("path", "struct"),
    [
        ("/api/chat", "ChatRequest"),
        ("/api/generate", "GenerateRequest"),
        ("/api/embed", "EmbedRequest"),
        ("/api/embeddings", "EmbeddingsRequest"),
    ],
)
def test_a_required_model_is_described_as_it_is_checked(
    spec: dict[str, Any], http: httpx.Client, path: str, struct: str
) -> None:  # fmt: skip
    schema = spec["components"]["schemas"][struct]
    assert "model" in schema["required"] and schema["properties"]["model"] == {"type": "string", "minLength": 1}
    for body in ({}, {"model": ""}):
        answer = http.post(path, json=body)
        assert (answer.status_code, answer.json()) == (400, {"error": "model is required"}), (path, body)
