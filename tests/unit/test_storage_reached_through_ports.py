"""No layer above storage downcasts the storage it was given to a SQL class, builds a SQL
storage or digs the SQL database out of one: everything reaches storage through the ports
(``storage/ports.py``), which memory implements too. Only ``storage/`` itself and the
composition roots that open the database (``bootstrap.py`` and the CLI) name them."""

from __future__ import annotations

import re
from pathlib import Path

import orderguard

SOURCE = Path(orderguard.__file__).parent
#: ``isinstance(x, SqlStorage)``, ``isinstance(x, (SqlUnitOfWork, ...))`` and the like.
DOWNCAST = re.compile(r"isinstance\([^)]*\bSql\w*")
#: Building a SQL storage on a database, or taking the database out of a storage.
SQL_SEAM = re.compile(r"\b(?:SqlStorage|sql_database)\(")


def _opens_the_database(relative: Path) -> bool:
    """``bootstrap.py`` and the CLI (``cli.py``, ``cli_*.py`` or a ``cli/`` package)."""
    top = relative.parts[0]
    return top == "bootstrap.py" or top == "cli" or re.fullmatch(r"cli(_\w+)?\.py", top) is not None


def _reaching_past_the_ports(pattern: re.Pattern[str], *, roots_allowed: bool) -> list[str]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        if relative.parts[0] == "storage" or (roots_allowed and _opens_the_database(relative)):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_layer_above_storage_downcasts_to_a_sql_class() -> None:
    assert _reaching_past_the_ports(DOWNCAST, roots_allowed=False) == []


def test_only_storage_bootstrap_and_the_cli_build_a_sql_storage_or_take_its_database() -> None:
    assert _reaching_past_the_ports(SQL_SEAM, roots_allowed=True) == []


def test_the_check_sees_a_downcast() -> None:
    assert DOWNCAST.search("        if isinstance(storage, SqlStorage):")
    assert DOWNCAST.search("ok = isinstance(uow, (MemoryUnitOfWork, SqlUnitOfWork))")
    assert not DOWNCAST.search("if isinstance(slot.breaker, ObservedBreaker):")


def test_the_check_sees_a_sql_storage_built_or_its_database_taken() -> None:
    assert SQL_SEAM.search("        self._storage = SqlStorage(db)")
    assert SQL_SEAM.search("    db = sql_database(container.storage)")
    assert not SQL_SEAM.search("def open_storage(settings: Settings) -> SqlStorage:")
    assert not SQL_SEAM.search("storage: UnitOfWorkFactory = InMemoryStorage()")


def test_only_the_composition_roots_are_let_off() -> None:
    assert _opens_the_database(Path("bootstrap.py"))
    assert _opens_the_database(Path("cli_doctor.py"))
    assert _opens_the_database(Path("cli/doctor.py"))
    assert not _opens_the_database(Path("web/console/plugs.py"))
    assert not _opens_the_database(Path("observability/hooks.py"))
    assert not _opens_the_database(Path("client.py"))
