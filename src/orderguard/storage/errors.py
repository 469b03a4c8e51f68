"""What can go wrong in storage, as the rest of the code sees it.

The drivers' errors are translated into these at the boundary (``sqlite.py``,
``postgres.py``); everything above storage catches only these.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database could not do what was asked."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or refused the connection."""


class UniqueViolation(StorageError):
    """A row with the same unique value exists; ``constraint`` names the column or index."""

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        super().__init__(f"unique constraint violated: {constraint}")


class AppendOnlyViolation(StorageError):
    """Something tried to change or delete an append-only row (timeline, orders)."""
