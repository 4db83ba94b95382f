from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.ollama import Options
from app.ollama.translate.options import (
    OLLAMA_DEFAULTS,
    format_to_openai,
    keep_alive_seconds,
    model_options,
    options_to_openai,
    think_to_openai,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (300, 300),
        (0.0, 0.0),
        (-1, -1),
        ("0", 0.0),
        ("300", 300.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("-1m", -60.0),
        ("250ms", 0.25),
        ("0s", 0.0),
    ],
)
def test_keep_alive_accepts_numbers_and_go_durations(value: float | str | None, seconds: float | None) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 m", "m5", "1d", ""])
def test_keep_alive_rejects_what_go_rejects(value: str) -> None:
    with pytest.raises(InvalidRequest, match=f'^time: invalid duration "{value}"$'):
        keep_alive_seconds(value)


def test_options_map_to_mistralrs_names() -> None:
    options = Options(
        num_predict=128,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        stop="\n",
        repeat_penalty=1.1,
        presence_penalty=0.2,
        frequency_penalty=0.3,
        seed=7,
    )
    assert options_to_openai(options, OLLAMA_DEFAULTS) == {
        "max_tokens": 128,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "stop": ["\n"],
        "repetition_penalty": 1.1,
        "presence_penalty": 0.2,
        "frequency_penalty": 0.3,
        "seed": 7,
    }


@pytest.mark.parametrize("num_predict", [-1, -2, 0])
def test_unlimited_num_predict_sends_no_max_tokens(num_predict: int) -> None:
    assert "max_tokens" not in options_to_openai(Options(num_predict=num_predict), OLLAMA_DEFAULTS)


# What Ollama samples with when a client (Open WebUI, for one) sends no options: api.DefaultOptions().
OLLAMAS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.1}


def test_no_options_sample_with_ollamas_defaults() -> None:
    assert OLLAMA_DEFAULTS == {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1}
    assert options_to_openai(None, model_options(None)) == OLLAMAS
    assert options_to_openai(Options(), model_options({})) == OLLAMAS


def test_each_option_given_replaces_its_default_alone() -> None:
    given = Options(temperature=0.0, num_predict=5, stop=["x"])
    expected = {**OLLAMAS, "temperature": 0.0, "max_tokens": 5, "stop": ["x"]}
    assert options_to_openai(given, model_options(None)) == expected


def test_the_models_own_parameters_replace_ollamas_defaults_and_requests_replace_both() -> None:
    own = model_options({"temperature": 0.6, "top_p": 0.95, "min_p": 0.05})
    assert own == {"temperature": 0.6, "top_k": 40, "top_p": 0.95, "repeat_penalty": 1.1, "min_p": 0.05}
    assert options_to_openai(Options(top_p=0.5), own) == {
        "temperature": 0.6, "top_k": 40, "top_p": 0.5, "repetition_penalty": 1.1, "min_p": 0.05,
    }  # fmt: skip


def test_format() -> None:
    assert format_to_openai(None) == {} and format_to_openai("") == {}
    assert format_to_openai("json") == {"response_format": {"type": "json_object"}}
    schema = {"type": "object"}
    assert format_to_openai(schema) == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    }


@pytest.mark.parametrize(
    ("think", "fields"),
    [
        (None, {}),
        (True, {"enable_thinking": True}),
        (False, {"enable_thinking": False}),
        ("low", {"enable_thinking": True, "reasoning_effort": "low"}),
        ("medium", {"enable_thinking": True, "reasoning_effort": "medium"}),
        ("high", {"enable_thinking": True, "reasoning_effort": "high"}),
        ("max", {"enable_thinking": True, "reasoning_effort": "high"}),
    ],
)
def test_think(think: bool | str | None, fields: dict[str, object]) -> None:
    assert think_to_openai(think) == fields
