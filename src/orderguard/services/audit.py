"""The shopper-data audit: stored orders whose shopper data is now invalid or incomplete.

Validation rules change (a library learns new numbering plans, a country code is retired,
data was imported or edited by hand); the audit re-applies today's intake rules
(:mod:`orderguard.services.shopper_data`) to what is stored, so a shop can fix addresses
and contacts before a delivery or a notification fails.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from orderguard.services.shopper_data import (
    InvalidShopperData,
    normalise_country,
    normalise_email,
    normalise_phone,
)
from orderguard.storage.ports import ShopperRow, UnitOfWorkFactory

#: The longest value intake accepts per field (as in the API's schema).
MAX_LENGTH = {"name": 200, "line1": 200, "line2": 200, "city": 100, "postal_code": 20}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one field of one order."""

    order_id: str
    #: ``email``, ``phone``, ``country``, ``name``, ``line1``, ``city``, ``postal_code``...
    field: str
    #: ``invalid``, ``missing`` or ``too_long``.
    kind: str
    #: Why, in words (never the value itself: it is personal data).
    reason: str


@dataclass
class AuditReport:
    """What the audit found: orders scanned, and findings by ``field: kind``."""

    scanned: int = 0
    findings: dict[str, list[Finding]] = field(default_factory=lambda: defaultdict(list))

    @property
    def orders_with_problems(self) -> int:
        """Distinct orders with at least one finding."""
        return len({f.order_id for found in self.findings.values() for f in found})


def audit_shopper(row: ShopperRow) -> list[Finding]:
    """Today's intake rules applied to one stored order's shopper data."""
    found: list[Finding] = []

    def add(name: str, kind: str, reason: str) -> None:
        found.append(Finding(row.order_id, name, kind, reason))

    for name, check in (("email", normalise_email), ("country", normalise_country)):
        value = getattr(row, name)
        if not (value or "").strip():
            add(name, "missing", "empty")
            continue
        try:
            check(value)
        except InvalidShopperData as exc:
            add(name, "invalid", _without(str(exc), value))
    if row.phone:
        try:
            normalise_phone(row.phone, region=row.country)
        except InvalidShopperData as exc:
            add("phone", "invalid", _without(str(exc), row.phone))
    for name, limit in MAX_LENGTH.items():
        value = getattr(row, name)
        if value is None and name == "line2":
            continue
        if not (value or "").strip():
            add(name, "missing", "empty")
        elif len(value) > limit:
            add(name, "too_long", f"{len(value)} characters, at most {limit}")
    return found


async def audit_customers(
    storage: UnitOfWorkFactory, *, since: datetime | None = None
) -> AuditReport:
    """Scan every stored order (placed since ``since``) and collect the findings."""
    report = AuditReport()
    async for row in storage.shopper_rows.scan(since=since):
        report.scanned += 1
        for finding in audit_shopper(row):
            report.findings[f"{finding.field}: {finding.kind}"].append(finding)
    return report


def _without(reason: str, value: str) -> str:
    """A validator's message without the value it quotes (personal data)."""
    return reason.replace(repr(value), "the value").replace(value, "the value")
