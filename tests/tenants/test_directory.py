"""API_KEYS_FILE as a key list or as named tenants: what each key belongs to, what a broken file says, and the
file read again when it changes, the last good one kept when it breaks."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from app.tenants import ANONYMOUS, KeyFile, Limits, load_directory

TEAMS = """
tenants:
  - name: team-a
    keys: ["sha256:{digest}", "plain-a"]
    limits: {{requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 8, models: ["smollm2:135m"]}}
  - name: team-b
    keys: ["plain-b"]
"""


def _teams(path: Path) -> Path:
    path.write_text(TEAMS.format(digest=hashlib.sha256(b"secret-a").hexdigest()))
    return path


def test_named_tenants_own_their_keys_by_digest_or_in_plain(tmp_path: Path) -> None:
    directory = load_directory(("inline",), str(_teams(tmp_path / "keys.yaml")))
    names = {key: getattr(directory.identify([key]), "name", None)
             for key in (b"secret-a", b"plain-a", b"plain-b", b"inline", b"wrong", b"sha256:" + b"0" * 64)}  # fmt: skip
    assert names == {b"secret-a": "team-a", b"plain-a": "team-a", b"plain-b": "team-b", b"inline": ANONYMOUS,
                     b"wrong": None, b"sha256:" + b"0" * 64: None}  # fmt: skip
    team_a = directory.identify([b"wrong", b"plain-a"])  # a bearer token and an x-api-key: either may be the key
    assert team_a is not None and team_a.limits == Limits(600, 200000, 8, frozenset({"smollm2:135m"}))
    assert directory.identify([b"plain-b"]).limits == Limits()  # type: ignore[union-attr]
    assert sorted(tenant.name for tenant in directory.tenants) == [ANONYMOUS, "team-a", "team-b"]


def test_the_plain_list_is_one_anonymous_tenant(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("# the team's keys\nk1\n\n  k2  \n")
    directory = load_directory((), str(path))
    assert [getattr(directory.identify([key]), "name", None) for key in (b"k1", b"k2", b"# the team's keys")] == [
        ANONYMOUS, ANONYMOUS, None]  # fmt: skip
    assert load_directory(()).open and not directory.open


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants:\n  - name: a\n    keys: [k]\n    limits: {rpm: 5}\n", "Object contains unknown field `rpm`"),
        ("tenants:\n  - name: a\n    keys: [k]\n  - name: a\n    keys: [j]\n", "tenant 'a' is named twice"),
        (
            "tenants:\n  - name: a\n    keys: [k]\n  - name: b\n    keys: [k]\n",
            "a key of tenant 'b' is also one of 'a'",
        ),
        ("tenants:\n  - name: a\n    keys: []\n", "tenant 'a' has no keys"),
        ("tenants:\n  - name: anonymous\n    keys: [k]\n", "tenant name 'anonymous' must be"),
        ("tenants:\n  - name: 'a b'\n    keys: [k]\n", "tenant name 'a b' must be"),
        ("tenants:\n  - name: a\n    keys: [k]\n    limits: {concurrent: 0}\n", "concurrent must be at least 1"),
        ("tenants:\n  - name: a\n    keys: ['sha256:abc']\n", "a sha256: key must be 64 hex digits"),
        ("tenants: [\n", "is not valid YAML"),
    ],
)
def test_a_broken_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_directory((), str(path))


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _teams(tmp_path / "keys.yaml")
    keys = KeyFile((), str(path))
    assert keys.directory.identify([b"plain-c"]) is None
    path.write_text(path.read_text() + "  - name: team-c\n    keys: [plain-c]\n")
    os.utime(path, ns=(1, 1))  # a new stamp even within the file system's time resolution
    keys.check()
    assert getattr(keys.directory.identify([b"plain-c"]), "name", None) == "team-c"
    caplog.set_level(logging.WARNING)
    path.write_text("tenants:\n  - name: team-c\n    keys: [plain-c]\n    limits: {burst: 1}\n")
    keys.check()
    assert getattr(keys.directory.identify([b"plain-a"]), "name", None) == "team-a"  # the last good file
    assert "not reloaded, the last good keys stay in use" in caplog.text and "unknown field `burst`" in caplog.text
    assert "plain-a" not in caplog.text
    keys.check()  # unchanged since: not read again, not logged again
    assert caplog.text.count("not reloaded") == 1
