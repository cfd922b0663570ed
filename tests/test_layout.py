"""The code keeps its shape: small modules, no import circles, SQL and Flask where they belong."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simulator"
MAX_LINES = 500


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """The modules `path` imports (absolute names, relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports at import time or in a function."""
    mods = modules()
    return {
        name: {m for m in imports_of(path, name) if m in mods and m != name}
        for name, path in mods.items()
    }


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by role"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def edges(node: str) -> list[str]:
        # A package's face and its own modules are one unit, not a circle of code.
        return sorted(
            n for n in graph[node] if not (n.startswith(node + ".") or node.startswith(n + "."))
        )

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert circles(internal_graph()) == []


def _importers_of(target: str) -> list[str]:
    return sorted(
        name
        for name, path in modules().items()
        if any(m == target or m.startswith(target + ".") for m in imports_of(path, name))
    )


def test_only_the_store_speaks_sqlite() -> None:
    outside = [n for n in _importers_of("sqlite3") if not n.startswith("simulator.store")]
    assert outside == []


@pytest.mark.parametrize(
    "layer", ["simulator.contract", "simulator.store", "simulator.planfix.commands"]
)
def test_rules_and_storage_know_nothing_of_flask(layer: str) -> None:
    using = [n for n in _importers_of("flask") if n == layer or n.startswith(layer + ".")]
    assert using == []
