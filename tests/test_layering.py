"""The import rules of ARCHITECTURE.md: each layer may use the ones below it, never the ones above."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MODULES = sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "otel").rglob("*.py"))
SDK = ("opentelemetry.sdk", "opentelemetry.exporter")
# What each part of the proxy must not import (by module prefix).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "otel": ("app",),
    "app.errors": ("app.", "starlette", "httpx", "otel"),
    "app.ollama": ("app.http", "app.routes", "app.generation", "app.commands", "starlette", "httpx", "opentelemetry"),
    "app.models": ("app.http", "app.routes", "app.generation", "app.commands", "app.ollama", "starlette"),
    "app.upstream": ("app.http", "app.routes", "app.generation", "app.commands", "app.ollama", "app.models",
                     "starlette"),
    "app.limiter": ("app.http", "app.routes", "app.generation", "starlette"),
    "app.generation": ("app.routes", "app.commands", "opentelemetry"),
    "app.http": ("app.routes", "app.commands", "app.upstream.http", "app.upstream.embedded"),
    "app.routes": ("app.commands", "app.upstream.http", "app.upstream.embedded", "opentelemetry", "otel.metrics",
                   "otel.record", "otel.telemetry"),
}  # fmt: skip
# app.main, the composition root, assembles the layers: it may import any of them, and only the commands import it.
EXEMPT: dict[str, tuple[str, ...]] = {}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _matches(name: str, prefix: str) -> bool:
    return name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_each_module_imports_only_the_layers_below_it(path: Path) -> None:
    module = _name(path)
    forbidden = [prefix for owner, prefixes in FORBIDDEN.items() if _matches(module, owner) for prefix in prefixes]
    allowed = EXEMPT.get(module, ())
    wrong = {name for name in _imports(path) for prefix in forbidden if _matches(name, prefix)}
    assert not {name for name in wrong if not any(_matches(name, prefix) for prefix in allowed)}, module


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_sdk_and_exporters_only_in_otel_setup(path: Path) -> None:
    if path == ROOT / "otel" / "setup.py":
        return
    assert not {name for name in _imports(path) if name.startswith(SDK)}, path


def test_only_the_entry_points_configure_telemetry() -> None:
    users = {_name(path) for path in (ROOT / "app").rglob("*.py") if "otel.setup" in _imports(path)}
    assert users == {"app.commands.serve", "app.commands.worker"}


ARCHITECTURE = ROOT / "ARCHITECTURE.md"


def _layers() -> list[tuple[str, ...]]:
    """The rows of ARCHITECTURE.md's layer table, top to bottom, each as the module prefixes it names."""
    table = ARCHITECTURE.read_text().split("| layer | what it is |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return [tuple(path.removesuffix("/").removesuffix(".py").replace("/", ".")
                  for path in re.findall(r"`([\w/.]+)`", row)) for row in rows]  # fmt: skip


def _row(module: str, layers: list[tuple[str, ...]]) -> int | None:
    found = [(len(prefix), index) for index, row in enumerate(layers) for prefix in row if _matches(module, prefix)]
    return max(found)[1] if found else None


def test_the_layer_table_covers_every_module() -> None:
    layers = _layers()
    assert layers[0] == ("app.commands",) and layers[-1] == ("otel",)
    assert [_name(path) for path in MODULES if _row(_name(path), layers) is None] == ["app"]  # app/__init__.py


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_each_module_imports_only_its_row_and_the_rows_below(path: Path) -> None:
    layers = _layers()
    own = _row(_name(path), layers)
    above = {name: row for name in _imports(path) if (row := _row(name, layers)) is not None and own is not None
             and row < own}  # fmt: skip
    assert above == {}, f"{_name(path)} (row {own}) imports rows above it"


def test_only_the_commands_import_the_composition_root() -> None:
    users = {_name(path) for path in MODULES if "app.main" in _imports(path)}
    assert users == {"app.commands.serve", "app.commands.worker"}


def _module_names() -> list[str]:
    return [_name(path) for path in MODULES if path.name != "__main__.py"]


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # A cycle hides when another module happens to be imported first (the suite's conftest imports app.main).
    def first(module: str) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""

    with ThreadPoolExecutor(4) as pool:
        failures = {module: error for module, error in pool.map(first, _module_names()) if error}
    assert failures == {}


def test_routes_hold_no_try() -> None:
    """Handlers parse, resolve and hand over; what fails is an error the one renderer answers."""
    holding = [_name(path) for path in sorted((ROOT / "app" / "routes").glob("*.py"))
               if any(isinstance(node, ast.Try) for node in ast.walk(ast.parse(path.read_text())))]  # fmt: skip
    assert holding == []


def test_the_rules_can_fail() -> None:
    assert _matches("app.routes.system", "app.routes") and not _matches("app.routesx", "app.routes")
    assert _matches("app.upstream.http.client", "app.upstream.http") and _matches("app.errors", "app.")
