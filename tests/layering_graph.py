"""Facts about orderguard's module import graph, measured with grimp (import-linter's graph).

- file cycles: modules that import one another, directly or through others (each strongly
  connected set of more than one module);
- depth: how many layers the modules stack up to: the number of modules on the longest
  import path, after collapsing each cycle into one node (a module importing nothing of
  orderguard is depth 1);
- package layers (printed only): the same depth on the graph of top-level packages;
- upward imports: pairs of packages (top-level names under ``orderguard``) where one
  imports the other although the ``layers`` contract of .importlinter puts the importer
  lower (known exceptions included: this counts what the code does);
- stale exceptions: ``# pending`` lines of .importlinter (and :data:`PENDING_CYCLE_EDGES`)
  whose import no longer happens;
- unprotected libraries: third-party packages the code imports that no ``protected``
  contract names.

Each is measured on the code as it is and on the *target*: the same graph without the
known exceptions, the imports that work under way removes (each is checked to still
happen, so the two meet as the exceptions are deleted).

``python tests/layering_graph.py [path/to/src]`` prints them; tests/unit/test_layering_graph.py
holds the code to them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import grimp

try:
    from tests import layering_table as table
except ImportError:  # run as a script: python tests/layering_graph.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import layering_table as table  # type: ignore[no-redef]

PACKAGE = "orderguard"
SRC = Path(__file__).resolve().parent.parent / "src"

#: Imports that close a cycle of files without breaking a contract, and the work that
#: removes them. Delete a line when its import is gone (a test says when).
PENDING_CYCLE_EDGES: list[table.Pending] = []


@dataclass(frozen=True)
class Shape:
    """Cycles, depth and upward imports of one graph."""

    cycles: list[list[str]]
    depth: int
    longest: list[str]
    upward: list[tuple[str, str]]


@dataclass(frozen=True)
class Facts:
    """What the graph says, as it is and without the known exceptions."""

    now: Shape
    target: Shape
    stale: list[table.Pending]
    unprotected: list[str]


@contextmanager
def _on_path(src: Path) -> Iterator[None]:
    """Import orderguard from ``src`` while building the graph."""
    saved = dict(sys.modules)
    sys.path.insert(0, str(src))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    try:
        yield
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
        sys.modules.update({k: v for k, v in saved.items() if k.startswith(PACKAGE)})


def build(src: Path = SRC) -> grimp.ImportGraph:
    """The import graph of ``src/orderguard`` with third-party packages as single nodes."""
    with _on_path(src):
        return grimp.build_graph(PACKAGE, include_external_packages=True, cache_dir=None)


def internal(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Module -> the orderguard modules it imports."""
    modules = {m for m in graph.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")}
    return {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}


def components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def depth(edges: dict[str, set[str]]) -> tuple[int, list[str]]:
    """The number of nodes on the longest path of the graph with cycles collapsed, and one
    such path (a cycle shows as its sorted members joined by ``+``)."""
    groups = components(edges)
    group_of = {m: i for i, group in enumerate(groups) for m in group}
    below = {i: {group_of[t] for m in g for t in edges[m]} - {i} for i, g in enumerate(groups)}

    @cache
    def longest(i: int) -> tuple[int, tuple[int, ...]]:
        best: tuple[int, tuple[int, ...]] = (0, ())
        for j in sorted(below[i]):
            best = max(best, longest(j))
        return best[0] + 1, (i, *best[1])

    size, path = max((longest(i) for i in range(len(groups))), default=(0, ()))
    return size, ["+".join(groups[i]) for i in path]


def unit(module: str) -> str:
    """The top-level name under orderguard a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The package graph: top-level name -> the other top-level names its modules import
    (the root package ``orderguard`` itself left out)."""
    found: dict[str, set[str]] = {}
    for module, targets in edges.items():
        if module != PACKAGE:
            found.setdefault(unit(module), set()).update(
                unit(t) for t in targets if t != PACKAGE and unit(t) != unit(module)
            )
    return found


def upward(edges: dict[str, set[str]], stack: list[list[str]]) -> list[tuple[str, str]]:
    """(importer, imported) package pairs where the importer sits in a lower layer."""
    rank = {package: -n for n, layer in enumerate(stack) for package in layer}
    pairs = {
        (unit(m), unit(t))
        for m, targets in edges.items()
        for t in targets
        if unit(m) in rank and unit(t) in rank and rank[unit(m)] < rank[unit(t)]
    }
    return sorted(pairs)


def stale(graph: grimp.ImportGraph, pending: list[table.Pending]) -> list[table.Pending]:
    """The known exceptions whose import no longer happens."""
    return [
        p
        for p in pending
        if p.importer not in graph.modules
        or p.imported not in graph.modules
        or not graph.direct_import_exists(importer=p.importer, imported=p.imported)
    ]


def unprotected(graph: grimp.ImportGraph, protected: set[str]) -> list[str]:
    """Third-party packages the code imports that no protected contract names."""
    external = {m for m in graph.modules if not m.startswith(PACKAGE)}
    return sorted(m for m in external - protected if m.split(".")[0] not in sys.stdlib_module_names)


def shape(edges: dict[str, set[str]], stack: list[list[str]]) -> Shape:
    """Cycles, depth and upward imports of ``edges``."""
    size, path = depth(edges)
    return Shape(
        cycles=[c for c in components(edges) if len(c) > 1],
        depth=size,
        longest=path,
        upward=upward(edges, stack),
    )


def without(edges: dict[str, set[str]], pending: list[table.Pending]) -> dict[str, set[str]]:
    """``edges`` less the known exceptions."""
    gone = {(p.importer, p.imported) for p in pending}
    return {m: {t for t in targets if (m, t) not in gone} for m, targets in edges.items()}


def facts(src: Path = SRC, contracts: Path = table.CONTRACTS) -> Facts:
    """Everything this module measures, for the code in ``src``."""
    graph = build(src)
    edges = internal(graph)
    config = table.read(contracts)
    stack = table.layers(config)
    pending = table.exceptions(contracts) + PENDING_CYCLE_EDGES
    protected = {
        m for c in table.contracts(config, "protected") for m in table.lines(c["protected_modules"])
    }
    return Facts(
        now=shape(edges, stack),
        target=shape(without(edges, pending), stack),
        stale=stale(graph, pending),
        unprotected=unprotected(graph, protected),
    )


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    measured = facts(src)
    for title, got in (
        ("as it is", measured.now),
        ("without the known exceptions", measured.target),
    ):
        print(f"{title}:")
        print(f"  file cycles: {got.cycles or 'none'}")
        print(f"  layers (modules on the longest import path): {got.depth}")
        print("    " + " -> ".join(got.longest))
        print(f"  upward imports ({len(got.upward)}): {got.upward}")
    tops, top_path = depth(packages(internal(build(src))))
    print(f"package layers (packages on the longest import path, as it is): {tops}")
    print("    " + " -> ".join(top_path))
    print(f"stale exceptions: {measured.stale or 'none'}")
    print(f"unprotected libraries: {measured.unprotected or 'none'}")
