"""No two files in ``storage`` import each other, directly or round a circle (imports under
``if TYPE_CHECKING:`` do not run, so they do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

import orderguard.storage

STORAGE = Path(orderguard.storage.__file__).parent


def _imports(path: Path) -> set[str]:
    """The ``orderguard.storage`` modules ``path`` imports when it runs (any depth)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.removeprefix("orderguard.storage.") for n in names}
    return found


def graph() -> dict[str, set[str]]:
    """Each storage module and the storage modules it imports."""
    modules = {p.stem for p in STORAGE.glob("*.py") if p.stem != "__init__"}
    return {m: _imports(STORAGE / f"{m}.py") & modules for m in modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every circle of imports found by a depth-first walk (empty: none)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            walk(target, [*path, node])
        done.add(node)

    for start in sorted(edges):
        walk(start, [])
    return found


def test_storage_modules_import_each_other_in_one_direction_only() -> None:
    edges = graph()
    assert {"errors", "database"} <= edges["sqlite"] and "database" in edges["connect"]
    assert cycles(edges) == []


def test_the_walk_finds_a_circle() -> None:
    edges = {"database": {"errors"}, "sqlite": {"database"}, "errors": set()}
    assert cycles(edges) == []
    assert cycles({**edges, "database": {"sqlite"}}) == [["database", "sqlite", "database"]]
