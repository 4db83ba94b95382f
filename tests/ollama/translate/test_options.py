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
        ("+5s", 5.0),
        ("-0", 0.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("1.5µs", 1.5e-6),
        ("2μs3ns", 2.003e-6),
        ("0000000000000000000000001h", 3600.0),
        ("1.0000000000000000000000000001s", 1.0),  # digits past Go's precision are dropped, as Go does
        ("2562047h", 2562047 * 3600.0),  # the longest Go's time.Duration holds, to the hour
    ],
)
def test_keep_alive_accepts_numbers_and_go_durations(value: float | str | None, seconds: float | None) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize(
    "value", ["soon", "5 m", "m5", "1d", "", ".", ".s", "-", "1h5", "2562048h", "99999999999999999999s", "inf", "nan"]
)
def test_keep_alive_rejects_what_go_rejects(value: str) -> None:
    with pytest.raises(InvalidRequest, match=f'^time: invalid duration "{value}"$'):
        keep_alive_seconds(value)


@pytest.mark.parametrize("tail", ["", "x", "s", ".5", "1.1.1s"])
def test_keep_alive_is_read_in_one_pass_however_long(tail: str) -> None:
    # A backtracking pattern took 20 s over 40,000 digits, and 25 times as long over five times as many: this would
    # outlast the test's time limit. Read in one pass it is a few milliseconds.
    # (Without a tail it is a number in a string, which reads as seconds: too many for a float, so refused too.)
    long = "1" * 200_000 + tail
    with pytest.raises(InvalidRequest) as refused:
        keep_alive_seconds(long)
    # Go quotes the whole value; here the first 64 characters, and the length
    assert str(refused.value) == f'time: invalid duration "{"1" * 64}"… ({len(long)} characters)'


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


def test_the_models_stop_words_apply_unless_the_request_gives_its_own() -> None:
    own = model_options({"stop": ["<|im_start|>", "<|im_end|>"]})
    assert options_to_openai(None, own) == {**OLLAMAS, "stop": ["<|im_start|>", "<|im_end|>"]}
    assert options_to_openai(Options(stop="END"), own) == {**OLLAMAS, "stop": ["END"]}  # replaced, not added to


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
