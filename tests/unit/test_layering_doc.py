"""docs/architecture.md tells the truth about the code: its import table is the one
written from .importlinter, it lists every module, and the worker's duties are the
worker's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests import layering_table as table

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "orderguard"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_the_import_table_is_the_one_written_from_the_contracts() -> None:
    # After changing .importlinter: python tests/layering_table.py --write
    assert table.section(DOC) == table.render(table.read())


def listed_paths() -> tuple[set[str], set[str]]:
    """The files and the folders the doc's module list names, relative to src/orderguard."""
    begin = DOC.index("```text\n", DOC.index("<!-- module list:")) + len("```text\n")
    block = DOC[begin : DOC.index("\n```", begin)]
    files, folders, trail = set(), set(), []
    for line in block.splitlines()[1:]:  # the first line is src/orderguard/ itself
        match = re.match(r"^( +)(\S+)", line)
        if match is None or not match.group(2).endswith(("/", ".py")):
            continue  # a description running on
        depth = len(match.group(1)) // 2 - 1
        trail = [*trail[:depth], match.group(2).rstrip("/")]
        (folders if match.group(2).endswith("/") else files).add("/".join(trail))
    return files, folders


def test_the_doc_lists_every_module_and_no_other() -> None:
    files, folders = listed_paths()
    modules = {str(p.relative_to(SOURCE)) for p in SOURCE.rglob("*.py") if p.name != "__init__.py"}
    packages = {
        str(p.parent.relative_to(SOURCE)) for p in SOURCE.rglob("__init__.py") if p.parent != SOURCE
    }
    assert files ^ modules == set(), "listed or present, not both"
    assert packages - folders == set(), "packages the list leaves out"
    assert {f for f in folders if not (SOURCE / f).is_dir()} == set(), "listed, not there"


def test_the_worker_duties_in_the_doc_are_the_worker_duties() -> None:
    start = DOC.index("<!-- worker duties:")
    listed = re.findall(r"^- \*\*(.+?)\*\*", DOC[start : DOC.index("\n\n", start + 1)], re.M)
    tree = ast.parse((SOURCE / "worker.py").read_text(encoding="utf-8"))
    (duties,) = (
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_duties"
    )
    named = [
        node.elts[0].value
        for node in ast.walk(duties)
        if isinstance(node, ast.Tuple)
        and node.elts
        and isinstance(node.elts[0], ast.Constant)
        and isinstance(node.elts[0].value, str)
    ]
    assert sorted(listed) == sorted(named)
    assert len(named) == 14
