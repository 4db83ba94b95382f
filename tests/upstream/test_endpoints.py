"""Where the mistral.rs servers are: a URL list or an upstreams file, each mistake refused at start, in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.upstream.endpoints import Endpoint


def _settings(tmp_path: Path, urls: str = "", file: str | None = None) -> Settings:
    environ = {"MISTRAL_URL": urls}
    if file is not None:
        path = tmp_path / "upstreams.yaml"
        path.write_text(file)
        environ["MISTRAL_UPSTREAMS_FILE"] = str(path)
    return Settings.from_env(environ, env_file=None)


def test_a_comma_separated_list_is_several_servers_named_by_their_urls(tmp_path: Path) -> None:
    settings = _settings(tmp_path, " http://a:8080/ , http://b:8080,")
    assert settings.mistral_url == "http://a:8080,http://b:8080"
    assert settings.endpoints == (Endpoint("http://a:8080"), Endpoint("http://b:8080"))
    assert [endpoint.label for endpoint in settings.endpoints] == ["http://a:8080", "http://b:8080"]
    assert settings.remote


def test_the_upstreams_file_gives_names_and_weights(tmp_path: Path) -> None:
    file = "upstreams:\n  - url: http://gpu-a:8080\n    name: gpu-a\n    weight: 2\n  - url: http://gpu-b:8080/\n"
    settings = _settings(tmp_path, file=file)
    assert settings.endpoints == (Endpoint("http://gpu-a:8080", "gpu-a", 2.0), Endpoint("http://gpu-b:8080"))
    assert settings.mistral_url is None and settings.remote


def test_no_url_is_the_engine_in_process(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert (settings.endpoints, settings.remote) == ((), False)


@pytest.mark.parametrize(
    ("urls", "file", "message"),
    [
        ("localhost:8080", None, "MISTRAL_URL must be an http:// or https:// URL with a host, such as "
         "http://localhost:8080 (got 'localhost:8080')"),
        ("http://a:1,http://a:1/", None, "MISTRAL_URL names an upstream more than once: http://a:1"),
        ("http://a:1", "upstreams: []", "set MISTRAL_URL or MISTRAL_UPSTREAMS_FILE, not both"),
        ("", "upstreams: []", "MISTRAL_UPSTREAMS_FILE ({path}) lists no upstreams"),
        ("", "upstreams:\n  - {url: 'http://a:1', name: x}\n  - {url: 'http://b:1', name: x}",
         "MISTRAL_UPSTREAMS_FILE ({path}) names an upstream more than once: x"),
        ("", "upstreams:\n  - {url: 'http://a:1', weight: 0}",
         "MISTRAL_UPSTREAMS_FILE ({path}): an upstream's weight must be above 0 (http://a:1)"),
        ("", "upstreams:\n  - {url: 'http://a:1', wieght: 2}",
         "MISTRAL_UPSTREAMS_FILE ({path}) is not a valid upstreams file: Object contains unknown field `wieght` "
         "- at `$.upstreams[0]`"),
        ("", "upstreams:\n  - {url: 'ftp://a'}",
         "MISTRAL_UPSTREAMS_FILE ({path}) must be an http:// or https:// URL with a host, such as "
         "http://localhost:8080 (got 'ftp://a')"),
        ("", "upstreams: [", "MISTRAL_UPSTREAMS_FILE ({path}) is not YAML: "),
    ],
)  # fmt: skip
def test_mistakes_are_refused_in_words(tmp_path: Path, urls: str, file: str | None, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        _settings(tmp_path, urls, file)
    expected = message.format(path=tmp_path / "upstreams.yaml")
    assert str(raised.value) == expected if not expected.endswith(": ") else str(raised.value).startswith(expected)


def test_an_unreadable_upstreams_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ValueError) as raised:
        Settings.from_env({"MISTRAL_UPSTREAMS_FILE": str(missing)}, env_file=None)
    assert str(raised.value) == f"MISTRAL_UPSTREAMS_FILE ({missing}) cannot be read: No such file or directory"
