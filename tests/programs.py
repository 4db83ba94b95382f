"""The pinned builds of the programs around the proxy (scripts/build-programs.sh), built once and cached."""

from __future__ import annotations

import functools
from pathlib import Path

from scripts.stack import build_programs


@functools.cache
def programs() -> Path:
    """The cache's bin directory; the first call of a run builds what is missing (minutes on a fresh machine)."""
    return build_programs()


def program(name: str) -> str:
    return str(programs() / name)
