"""Checks shared by ``/readyz``, ``orderguard doctor`` and the worker: each says pass,
warn, fail (or skip when there is nothing to check) and, unless it passed, the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """How a check came out, best first."""

    #: All is well.
    PASS = "pass"
    #: Nothing configured to check (counts as a pass).
    SKIP = "skip"
    #: Works, but needs attention soon.
    WARN = "warn"
    #: Broken: orders are or will be affected.
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 (pass, skip), 1 (warn) or 2 (fail); also ``doctor``'s exit code."""
        return {"pass": 0, "skip": 0, "warn": 1, "fail": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    #: What was found, e.g. ``reachable in 3 ms``.
    detail: str
    #: One line saying what to do; empty when nothing is to be done.
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        out = {"name": self.name, "status": str(self.status), "detail": self.detail}
        if self.fix:
            out["fix"] = self.fix
        return out


def worst(checks: list[Check]) -> int:
    """The highest severity among ``checks`` (0 when all passed)."""
    return max((c.status.severity for c in checks), default=0)
