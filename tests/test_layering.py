"""The one-way dependency of the house style: only ``otel/setup.py`` touches the SDK and exporters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FORBIDDEN = ("opentelemetry.sdk", "opentelemetry.exporter")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "otel").rglob("*.py")))
def test_sdk_and_exporters_only_in_otel_setup(path: Path) -> None:
    if path == ROOT / "otel" / "setup.py":
        return
    assert not {name for name in _imports(path) if name.startswith(FORBIDDEN)}, path


def test_only_the_entry_points_configure_telemetry() -> None:
    users = {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "app").rglob("*.py") if "otel.setup" in _imports(path)
    }
    assert users == {"app/cli.py", "app/asgi.py"}
