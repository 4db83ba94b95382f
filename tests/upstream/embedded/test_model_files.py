"""What a model's own files decide in-process: whether its chat template renders tools and thinking, and the options
it samples with when a request gives none."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mistralrs
import pytest

from app.main import create_app
from app.settings import Settings
from app.upstream.embedded import EmbeddedUpstream, resolve
from otel.telemetry import disabled
from tests.servers import serve_in_thread

HI = [{"role": "user", "content": "hello there"}]
# As Open WebUI sends them with every chat: its built-in tools (36 of them in 0.12.4).
TOOLS = [
    {"type": "function", "function": {"name": f"tool_{n}", "description": "a built-in tool",
                                      "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    for n in range(36)
]  # fmt: skip
PLAIN_CHATML = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _variant(tiny_model: Path, target: Path, template: str | None, generation: dict[str, Any] | None) -> Path:
    """The tiny model with another chat template and generation config."""
    shutil.copytree(tiny_model, target)
    if template is not None:
        config = json.loads((target / "tokenizer_config.json").read_text())
        (target / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    if generation is not None:
        config = json.loads((target / "generation_config.json").read_text())
        (target / "generation_config.json").write_text(json.dumps({**config, **generation}))
    return target


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    contexts: list[Any] = []

    def serve(model: Path) -> httpx.Client:
        engine = EmbeddedUpstream(resolve(str(model), model.parent))
        engine.load()
        context = serve_in_thread(create_app(Settings(), telemetry=disabled(), upstream=engine))
        client = httpx.Client(base_url=context.__enter__().url, timeout=60)
        contexts.append((context, client))
        return client

    yield serve
    for context, client in contexts:
        client.close()
        context.__exit__(None, None, None)


def _prompt_tokens(http: httpx.Client, model: str, tools: list[dict[str, Any]] | None) -> int:
    body = {"model": model, "messages": HI, "stream": False, "options": {"num_predict": 1}, "tools": tools}
    response = http.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    count: int = response.json()["prompt_eval_count"]
    return count


def test_a_template_that_renders_tools_gets_them(serve: Any, tiny_model: Path) -> None:
    http = serve(tiny_model)
    assert http.post("/api/show", json={"model": "tiny"}).json()["capabilities"] == ["completion", "tools"]
    assert _prompt_tokens(http, "tiny", TOOLS[:1]) > _prompt_tokens(http, "tiny", None)
    bad = {"model": "tiny", "messages": HI, "tools": [{"type": "function", "function": {}}]}
    assert http.post("/api/chat", json=bad).json() == {"error": "invalid tool: each tool needs a function with a name"}


def test_a_template_without_tools_refuses_them_as_ollama_does(serve: Any, tiny_model: Path, tmp_path: Path) -> None:
    http = serve(_variant(tiny_model, tmp_path / "chatml", PLAIN_CHATML, None))
    assert http.post("/api/show", json={"model": "chatml"}).json()["capabilities"] == ["completion"]
    refused = "registry.ollama.ai/library/chatml:latest does not support tools"
    chat = http.post("/api/chat", json={"model": "chatml", "messages": HI, "tools": TOOLS})
    assert (chat.status_code, chat.json()) == (400, {"error": refused})
    tool = {"name": "f", "input_schema": {"type": "object"}}
    messages = http.post("/v1/messages", json={"model": "chatml", "max_tokens": 5, "messages": HI, "tools": [tool]})
    assert (messages.status_code, messages.json()["error"]) == (400, {"type": "invalid_request_error",
                                                                      "message": refused})  # fmt: skip
    function = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    responses = http.post("/v1/responses", json={"model": "chatml", "input": "hi", "tools": [function]})
    assert (responses.status_code, responses.json()["error"]["message"]) == (400, refused)
    assert _prompt_tokens(http, "chatml", None) > 0  # and without tools, it answers


def test_a_template_that_thinks_says_so(serve: Any, tiny_model: Path, tmp_path: Path) -> None:
    thinking = PLAIN_CHATML.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")
    http = serve(_variant(tiny_model, tmp_path / "thinker", thinking, None))
    assert http.post("/api/show", json={"model": "thinker"}).json()["capabilities"] == ["completion", "thinking"]
    plain = serve(_variant(tiny_model, tmp_path / "plain", PLAIN_CHATML, None))
    body = {"model": "plain", "messages": HI, "think": True, "stream": False}
    refused = plain.post("/api/chat", json=body)
    assert (refused.status_code, refused.json()) == (400, {"error": '"plain" does not support thinking'})


def test_the_models_own_generation_config_is_what_show_lists(serve: Any, tiny_model: Path, tmp_path: Path) -> None:
    own = {"temperature": 0.6, "top_p": 0.95, "repetition_penalty": 1.05, "do_sample": True}
    http = serve(_variant(tiny_model, tmp_path / "tuned", None, own))
    shown = http.post("/api/show", json={"model": "tuned"}).json()
    assert shown["parameters"].splitlines() == [
        "repeat_penalty                 1.05",
        'stop                           "<|im_start|>"',  # its template is ChatML's: Ollama's stop words for it
        'stop                           "<|im_end|>"',
        "temperature                    0.6",
        "top_k                          40",  # not in the model's config: Ollama's default
        "top_p                          0.95",
    ]
    assert shown["modelfile"].endswith(
        "PARAMETER repeat_penalty 1.05\nPARAMETER stop <|im_start|>\nPARAMETER stop <|im_end|>\n"
        "PARAMETER temperature 0.6\nPARAMETER top_k 40\nPARAMETER top_p 0.95\n"
    )


def test_a_model_without_parameters_lists_ollamas_defaults(serve: Any, tiny_model: Path, tmp_path: Path) -> None:
    # A template that is not ChatML's (no turn markers Ollama knows): no stop words either.
    plain = "{%- for message in messages %}{{- message['role'] + ': ' + message['content'] + '\\n' }}{%- endfor %}"
    shown = serve(_variant(tiny_model, tmp_path / "plain", plain, None)).post("/api/show", json={"model": "plain"})
    assert shown.json()["parameters"].splitlines() == [
        "repeat_penalty                 1.1",
        "temperature                    0.8",
        "top_k                          40",
        "top_p                          0.9",
    ]


def test_a_turn_marker_is_silent_and_endless_to_the_engine_unless_it_is_a_stop_word(tiny_model: Path) -> None:
    """Why ChatML's stop words are applied, not only shown: mistral.rs renders a special token as nothing, sends no
    chunk for it and does not stop at it, so a model that opens a new turn generates silently to its limit."""
    runner = mistralrs.Runner(which=mistralrs.Which.Plain(model_id=str(tiny_model)))
    start_of_turn = 1  # <|im_start|> (tests/tiny_model.py)

    def chunks(stop: list[str] | None) -> list[tuple[str | None, str | None]]:
        request = mistralrs.ChatCompletionRequest(
            model="default", messages=HI, max_tokens=6, temperature=0.0, stream=True,
            logit_bias={start_of_turn: 100.0}, stop_seqs=stop,
        )  # fmt: skip
        return [
            (c.choices[0].delta.content, c.choices[0].finish_reason)
            for c in runner.send_chat_completion_request(request)
        ]

    assert chunks(None) == [("", "length")]  # six tokens made, one chunk: at the end
    assert chunks(["<|im_start|>", "<|im_end|>"]) == [("", "stop")]
