"""How a provider package declares the settlement report format it publishes: which header
identifies it, and which columns hold each field of a settlement line.

A declaration is data: ``orderguard reconcile`` (through the composition in
``cli/reconcile.py``) turns it into a report layout, so ``reconcile/`` never imports a
provider and ``providers/`` never imports ``reconcile/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: The kinds a settlement line can be (the values of :attr:`SettlementFormat.kinds`); a line
#: whose type maps to none of them is ``other``.
CHARGE, REFUND, CHARGEBACK, FEE, PAYOUT = "charge", "refund", "chargeback", "fee", "payout"


@dataclass(frozen=True, slots=True)
class Column:
    """Where one field is read: the first of ``names`` the report has, or, with
    ``coalesce``, the first non-empty value among all of them the report has."""

    names: tuple[str, ...]
    coalesce: bool = False


def first(*names: str) -> Column:
    """The first of ``names`` the report's header has (empty: no value)."""
    return Column(names)


def any_of(*names: str) -> Column:
    """The first non-empty value among those of ``names`` the report's header has."""
    return Column(names, coalesce=True)


@dataclass(frozen=True, eq=False)
class SettlementFormat:
    """One settlement report format, as its provider publishes it (compared and hashed as
    itself: its ``kinds`` are a mapping)."""

    #: Its ``--format`` name (formats of the same name are variants of one report).
    name: str
    #: The provider the reports come from (the recovery sweep's name for it).
    provider: str
    #: Header columns (lower case) that together identify the format.
    signature: frozenset[str]
    #: The provider's reference of the payment the line concerns.
    ref: Column
    #: The order id the payment carried (its metadata).
    order_ref: Column
    #: The provider's type of the line, mapped to a kind by :attr:`kinds`.
    kind: Column
    #: Kind (:data:`CHARGE`, ...) -> the provider's type values meaning it.
    kinds: Mapping[str, tuple[str, ...]]
    #: Money in (signed amounts: the whole amount).
    credit: Column
    #: Fee columns (each a signed amount).
    fees: tuple[Column, ...]
    currency: Column
    #: When the line happened.
    at: Column
    #: Money out, when the report has its own column for it.
    debit: Column | None = None
    #: Amounts are written in minor units rather than with decimals.
    minor_units: bool = False
    #: The provider documents its report as UTF-8: other bytes are errors, not GBK.
    utf8_only: bool = True
