"""The tiny random-weight Llama of tests/tiny_model.py: its files, and the embedded mistral.rs engine running it."""

from __future__ import annotations

import hashlib
import json
import pathlib
import threading
import time
from collections.abc import Iterator

import mistralrs
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from tests.tiny_model import BOS_TOKEN, EOS_TOKEN, SPECIAL_TOKENS, VOCAB_SIZE, build_tiny_model, render_chatml

FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
HELLO = [{"role": "user", "content": "hello"}]


def _digests(directory: pathlib.Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def _is_printable_ascii(text: str) -> bool:
    return all(c == "\n" or " " <= c <= "~" for c in text)


def _stream(
    runner: mistralrs.Runner,
    messages: list[dict[str, str]],
    max_tokens: int,
    temperature: float | None = None,
    tool_schemas: list[str] | None = None,
) -> Iterator[mistralrs.ChatCompletionChunkResponse]:
    request = mistralrs.ChatCompletionRequest(
        model="tiny",
        messages=messages,
        max_tokens=max_tokens,
        stream=True,
        temperature=temperature,
        top_p=None if temperature is None else 1.0,
        tool_schemas=tool_schemas,
    )
    result = runner.send_chat_completion_request(request)
    assert not isinstance(result, mistralrs.ChatCompletionResponse)
    return result


@pytest.fixture
def model_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return build_tiny_model(tmp_path / "tiny")


@pytest.fixture
def tokenizer(model_dir: pathlib.Path) -> Tokenizer:
    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


@pytest.fixture
def runner(model_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mistralrs.Runner]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    # The stub types Which.Plain apart from Which, though Runner takes it.
    runner = mistralrs.Runner(which=mistralrs.Which.Plain(model_id=str(model_dir)))  # type: ignore[arg-type]
    print(f"tiny model loaded in {time.perf_counter() - started:.3f} s")
    yield runner
    del runner


def test_build_writes_a_small_llama_directory(model_dir: pathlib.Path, tokenizer: Tokenizer) -> None:
    assert sorted(path.name for path in model_dir.iterdir()) == sorted(FILES)
    assert 300_000 < sum(path.stat().st_size for path in model_dir.iterdir()) < 1_000_000

    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["vocab_size"] == VOCAB_SIZE == tokenizer.get_vocab_size()
    assert 300 <= VOCAB_SIZE <= 500
    assert config["bos_token_id"] == tokenizer.token_to_id(BOS_TOKEN)
    assert config["eos_token_id"] == tokenizer.token_to_id(EOS_TOKEN)
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == (BOS_TOKEN, EOS_TOKEN)
    assert "add_generation_prompt" in tokenizer_config["chat_template"]

    tensors = load_file(str(model_dir / "model.safetensors"))
    hidden = config["hidden_size"]
    assert tensors["model.embed_tokens.weight"].shape == (VOCAB_SIZE, hidden)
    assert tensors["lm_head.weight"].shape == (VOCAB_SIZE, hidden)
    assert tensors["model.norm.weight"].shape == (hidden,)
    per_layer = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm",
    ]  # fmt: skip
    expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} | {
        f"model.layers.{n}.{name}.weight" for n in range(config["num_hidden_layers"]) for name in per_layer
    }
    assert set(tensors) == expected
    assert all(str(tensor.dtype) == "float32" for tensor in tensors.values())


def test_build_is_deterministic(tmp_path: pathlib.Path) -> None:
    first = _digests(build_tiny_model(tmp_path / "a"))
    second = _digests(build_tiny_model(tmp_path / "b"))
    assert first == second
    assert sorted(first) == sorted(FILES)
    assert _digests(build_tiny_model(tmp_path / "a")) == first  # rebuilding in place changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world! What is the weather in Paris?",
        "".join(chr(c) for c in range(0x20, 0x7F)),
        "line one\nline two\ttabbed  double  spaced ",
        "<|im_start|>user\nhi<|im_end|>\n",
    ],
)
def test_tokenizer_round_trips_ascii(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert len(ids) <= len(text)


def test_special_tokens_are_single_tokens(tokenizer: Tokenizer) -> None:
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.encode(token).ids == [token_id]
    assert tokenizer.encode("hello there").ids != tokenizer.encode("hello  there").ids


def test_runner_loads_the_directory(runner: mistralrs.Runner, model_dir: pathlib.Path) -> None:
    assert str(model_dir) in runner.list_models()
    assert runner.max_sequence_length() == 2048


def test_streamed_chat_completion(runner: mistralrs.Runner, tokenizer: Tokenizer, model_dir: pathlib.Path) -> None:
    chunks = list(_stream(runner, HELLO, max_tokens=8))

    assert chunks
    last = chunks[-1]
    assert last.usage is not None
    assert last.usage.completion_tokens == 8
    assert last.usage.prompt_tokens == len(tokenizer.encode(render_chatml(HELLO)).ids)
    assert last.choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.model == str(model_dir) for chunk in chunks)
    # The builder keeps generation to printable ASCII, so no invalid UTF-8 is merged: one chunk per token.
    assert len(chunks) == 8
    assert _is_printable_ascii("".join(chunk.choices[0].delta.content or "" for chunk in chunks))


def test_sampling_never_stops_early_nor_leaves_ascii(runner: mistralrs.Runner) -> None:
    for temperature in (0.7, 1.0, 1.5):
        chunks = list(_stream(runner, HELLO, max_tokens=48, temperature=temperature))
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == 48
        assert chunks[-1].choices[0].finish_reason == "length"
        assert _is_printable_ascii("".join(chunk.choices[0].delta.content or "" for chunk in chunks))


def test_non_streamed_chat_completion(runner: mistralrs.Runner) -> None:
    request = mistralrs.ChatCompletionRequest(model="tiny", messages=HELLO, max_tokens=8)
    response = runner.send_chat_completion_request(request)

    assert isinstance(response, mistralrs.ChatCompletionResponse)
    assert isinstance(response.choices[0].message.content, str)
    assert response.choices[0].message.content
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 8


def test_chat_template_renders_every_role(runner: mistralrs.Runner, tokenizer: Tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "tool", "content": "sunny, 20 C"},
        {"role": "user", "content": "Thanks!"},
    ]
    usage = list(_stream(runner, messages, max_tokens=1))[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == len(tokenizer.encode(render_chatml(messages)).ids)

    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {}}}},
    }
    with_tools = list(_stream(runner, messages, max_tokens=1, tool_schemas=[json.dumps(tool)]))[-1].usage
    assert with_tools is not None
    assert with_tools.prompt_tokens > usage.prompt_tokens + len(tokenizer.encode("get_weather").ids)


def test_two_streams_iterate_in_parallel_threads(runner: mistralrs.Runner) -> None:
    lock = threading.Lock()  # the Runner is not thread-safe: one call at a time
    with lock:
        first = _stream(runner, HELLO, max_tokens=24)
    with lock:
        second = _stream(runner, [{"role": "user", "content": "hello again"}], max_tokens=24)

    results: dict[int, list[mistralrs.ChatCompletionChunkResponse]] = {}
    errors: list[BaseException] = []

    def drain(index: int, stream: Iterator[mistralrs.ChatCompletionChunkResponse]) -> None:
        try:
            results[index] = list(stream)
        except BaseException as error:  # noqa: B036 - a pyo3 PanicException is a BaseException
            errors.append(error)

    threads = [threading.Thread(target=drain, args=(i, stream)) for i, stream in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    for chunks in results.values():
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == 24
    assert sorted(results) == [0, 1]
