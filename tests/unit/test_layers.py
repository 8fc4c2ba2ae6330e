"""The layering in DESIGN.md §3, checked mechanically: data flows downward, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "odradek"

# layer -> the odradek layers it may import (itself always allowed)
ALLOWED = {
    "protocol": set(),
    "log": {"protocol", "clock"},
    "coordinator": {"protocol", "log", "clock"},
    "replica": {"protocol", "log", "coordinator", "clock"},
    "cluster": {"protocol", "log", "replica", "coordinator", "config", "clock"},
    "handlers": {"protocol", "log", "replica", "coordinator", "cluster", "config", "clock"},
    "server": {"protocol", "handlers", "clock"},
    "client": {"protocol", "clock"},
    "cli": {"client", "config", "protocol", "broker", "clock"},
}


def _odradek_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    layers = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "odradek" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_lies_below(layer: str) -> None:
    offenders = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for imported in _odradek_imports(path) - ALLOWED[layer] - {layer}:
            offenders.append(f"{path.relative_to(PACKAGE)} imports odradek.{imported}")
    assert not offenders, "\n".join(offenders)
