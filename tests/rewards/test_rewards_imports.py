"""The reward package's internal imports: all at module top, and no module imports itself back."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import grit_fast.rewards

PACKAGE = Path(grit_fast.rewards.__file__).parent
PREFIX = "grit_fast.rewards"


def internal_imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, at module top) for each import of a grit_fast.rewards module in `path`."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            names = [f"{base}.{a.name}" for a in node.names] if base == PREFIX else [base]
        for name in names:
            if name.startswith(PREFIX + "."):
                module = ".".join(name.split(".")[:3])
                found.append((module, id(node) in top))
    return found


MODULES = {f"{PREFIX}.{p.stem}": p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_are_at_module_top(module):
    late = [m for m, at_top in internal_imports(MODULES[module]) if not at_top]
    assert late == [], f"{module} imports {late} inside a function"


def test_import_graph_is_acyclic():
    graph = {m: {d for d, _ in internal_imports(p) if d != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_each_module_imports_on_its_own():
    for module in MODULES:
        importlib.import_module(module)
