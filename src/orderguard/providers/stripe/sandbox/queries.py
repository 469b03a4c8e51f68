"""Small parsers and filters for the sandbox's Search, List and Refund parameters."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

_CLAUSE = re.compile(r"\s*metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'\s*")
#: ``created[...]`` operators of the List API and how each compares.
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}


def parse_search(query: str) -> list[tuple[str, str]] | None:
    """``metadata['k']:'v' AND ...`` as ``[(k, v), ...]``; None if not understood."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            return None
        value = re.sub(r"\\(.)", r"\1", match.group(2))
        clauses.append((match.group(1), value))
    return clauses


def window_filter(
    objs: list[dict[str, Any]], created: dict[str, Any] | str
) -> list[dict[str, Any]]:
    """Objects whose ``created`` satisfies every ``created[op]`` bound (or equals a plain value)."""
    if not isinstance(created, dict):
        return [o for o in objs if o["created"] == int(created)]
    bounds = [(_OPERATORS[op], int(value)) for op, value in created.items() if op in _OPERATORS]
    return [o for o in objs if all(test(o["created"], value) for test, value in bounds)]


def refund_problem(amount: int, remaining: int) -> tuple[str, str] | None:
    """Why a refund of ``amount`` cannot be made on ``remaining``, as (code, message)."""
    if remaining <= 0:
        return "charge_already_refunded", "This charge has already been refunded."
    if amount < 1:
        return "parameter_invalid_integer", "Refund amount must be a positive integer."
    if amount > remaining:
        return (
            "amount_too_large",
            f"Refund amount ({amount}) is greater than unrefunded ({remaining}).",
        )
    return None


def search_limit(raw: Any) -> int | None:
    """A Search ``limit``: 10 when absent, else an integer from 1 to 100; None if not."""
    if raw is None:
        return 10
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= 100:
        return None
    return int(text)
