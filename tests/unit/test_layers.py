"""The layering in DESIGN.md §3, checked mechanically: data flows downward, never up.

Every module of the package is covered: each package (layer) and each top-level module has an
entry below, and a new folder or top-level file fails until it is given one. Imports are read
from the source in every spelling: `import odradek.x`, `from odradek.x import y`,
`from odradek import x` and relative imports, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "odradek"

# layer or top-level module -> what it may import of odradek (itself always allowed)
ALLOWED = {
    # layers, lowest first
    "protocol": set(),
    "clock": set(),
    "config": set(),
    "log": {"protocol", "clock"},
    "security": {"protocol", "config", "clock"},
    "client": {"protocol", "clock", "security"},
    "replica": {"protocol", "log", "client", "clock", "config"},
    "coordinator": {"protocol", "replica", "client", "clock", "config"},
    "cluster": {"protocol", "replica", "coordinator", "client", "config", "clock", "security"},
    "handlers": {"protocol", "replica", "coordinator", "cluster", "config", "clock", "security"},
    "server": {"protocol", "handlers", "config", "clock", "security"},
    "web": {"protocol", "handlers", "server", "replica", "coordinator", "cluster", "client", "config", "clock", "security"},
    "cli": {"client", "config", "protocol", "broker", "clock", "security",
            "web"},  # the --workers supervisor serves the host's merged /metrics and /ready
    # top-level modules
    "broker": {"protocol", "clock", "config", "log", "replica", "coordinator", "cluster", "handlers", "server",
               "security", "web"},
    "pytest_plugin": {"broker", "client"},
    "__init__": {"broker"},
    "__main__": {"cli"},
}

# Exceptions that are part of the design: the one tool that reads log files directly.
EXCEPTIONS = {
    "cli/dump_log.py": {"log"},
}

# What must never happen, whatever ALLOWED says (the rules the design states outright).
FORBIDDEN = {
    "protocol": {"log", "server", "replica", "coordinator", "cluster", "handlers", "client", "cli", "broker", "security"},
    "security": {"log", "server", "replica", "coordinator", "cluster", "handlers", "client", "cli", "broker"},
    "log": {"replica", "coordinator", "handlers", "server", "cluster", "cli", "broker"},
    "replica": {"coordinator", "handlers", "server", "cluster", "cli", "broker"},
    "handlers": {"log", "server", "cli", "broker"},
    "coordinator": {"server", "handlers", "cluster", "cli", "broker"},
    "client": {"server", "handlers", "replica", "log", "coordinator", "cluster", "broker", "cli"},
    "cli": {"handlers", "server", "replica", "coordinator", "cluster"},
}


def _module_parts(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts


def _odradek_imports(path: Path) -> set[str]:
    """The first-level odradek names (layers or top-level modules) that `path` imports."""
    tree = ast.parse(path.read_text())
    package = _module_parts(path) if path.name == "__init__.py" else _module_parts(path)[:-1]
    imported = set()
    for node in ast.walk(tree):
        modules: list[list[str]] = []
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            if module == ["odradek"]:
                modules = [["odradek", alias.name] for alias in node.names]
            else:
                modules = [module]
        for parts in modules:
            if parts[0] == "odradek" and len(parts) > 1:
                imported.add(parts[1])
    return imported


def _unit_of(path: Path) -> str:
    """The layer (package) or top-level module a file belongs to."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_folder_and_top_level_module_has_a_place_in_the_layering() -> None:
    units = {_unit_of(path) for path in _all_modules()}
    unknown = sorted(units - set(ALLOWED))
    assert not unknown, f"add these to ALLOWED in {__file__} with the layers they may import: {unknown}"


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_layer_imports_only_what_lies_below(unit: str) -> None:
    offenders = []
    for path in _all_modules():
        if _unit_of(path) != unit:
            continue
        relative = str(path.relative_to(PACKAGE))
        allowed = ALLOWED[unit] | EXCEPTIONS.get(relative, set()) | {unit}
        for imported in sorted(_odradek_imports(path) - allowed):
            offenders.append(f"{relative} imports odradek.{imported}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_design_rules_hold(unit: str) -> None:
    assert not (ALLOWED[unit] & FORBIDDEN[unit]), f"ALLOWED lets {unit} import {ALLOWED[unit] & FORBIDDEN[unit]}"


def test_the_checker_sees_every_spelling(tmp_path) -> None:
    """`from odradek import x`, relative imports and imports inside functions all count."""
    global PACKAGE
    package = tmp_path / "odradek"
    (package / "log").mkdir(parents=True)
    module = package / "log" / "sample.py"
    module.write_text(
        "from odradek import replica\n"
        "from ..coordinator import thing\n"
        "from . import segment\n"
        "def f():\n    import odradek.server.x\n"
    )
    saved, PACKAGE = PACKAGE, package
    try:
        assert _odradek_imports(module) == {"replica", "coordinator", "log", "server"}
    finally:
        PACKAGE = saved
