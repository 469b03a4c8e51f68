"""The generic CSV format: a TOML file names the report's columns.

```toml
provider = "acme"          # the provider's name (default "csv")
[columns]                  # reference, order_id, amount are needed; the rest optional
reference = "Txn"
order_id = "Order"
amount = "Amount"
currency = "Currency"
type = "Kind"
date = "Booked"
fee = "Fee"
[types]                    # the report's type values for each kind (default: all charges)
charge = ["sale"]
refund = ["refund"]
chargeback = ["dispute"]
fee = ["fee"]
[options]
delimiter = ";"            # default: sniffed
decimal = ","              # default "."
currency = "EUR"           # when there is no currency column
minor_units = false        # amounts already in cents
encoding = "utf-8"         # default: sniffed (UTF-8 or GBK)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderguard.reconcile import categories as c
from orderguard.reconcile.formats import Columns, Layout, Projection, kind_case, literal

_REQUIRED = ("reference", "amount")


class MappingError(ValueError):
    """The column mapping file cannot be used."""


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file."""

    provider: str
    columns: dict[str, str]
    types: dict[str, list[str]]
    delimiter: str | None
    decimal: str
    currency: str | None
    minor_units: bool
    encoding: str | None


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; raises :class:`MappingError` saying what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: {exc}") from exc
    columns = _strings(data.get("columns", {}), f"{path} [columns]")
    missing = [key for key in _REQUIRED if key not in columns]
    if missing:
        raise MappingError(f"{path}: [columns] needs {', '.join(missing)}")
    if "currency" not in columns and "currency" not in data.get("options", {}):
        raise MappingError(f"{path}: name a currency column or set options.currency")
    types = {k: [str(v) for v in vs] for k, vs in data.get("types", {}).items()}
    unknown = set(types) - {
        c.CHARGE_KIND,
        c.REFUND_KIND,
        c.CHARGEBACK_KIND,
        c.FEE_KIND,
        c.PAYOUT_KIND,
    }
    if unknown:
        raise MappingError(f"{path}: unknown kinds in [types]: {', '.join(sorted(unknown))}")
    options: dict[str, Any] = data.get("options", {})
    return Mapping(
        provider=str(data.get("provider", "csv")),
        columns=columns,
        types=types,
        delimiter=options.get("delimiter"),
        decimal=str(options.get("decimal", ".")),
        currency=options.get("currency"),
        minor_units=bool(options.get("minor_units", False)),
        encoding=options.get("encoding"),
    )


def mapped_layout(mapping: Mapping) -> Layout:
    """The layout a mapping describes."""

    def project(cols: Columns) -> Projection:
        name = mapping.columns.get
        kind = (
            kind_case(cols.first(name("type", "")), mapping.types)
            if "type" in mapping.columns and mapping.types
            else literal(c.CHARGE_KIND)
        )
        currency = cols.first(name("currency", "")) if "currency" in mapping.columns else "NULL"
        default = literal(mapping.currency) if mapping.currency else "NULL"
        return {
            "ref": cols.first(mapping.columns["reference"]),
            "order_ref": cols.first(name("order_id", "")),
            "kind": kind,
            "credit": cols.first(mapping.columns["amount"]),
            "debit": "NULL",
            "fee": [cols.first(name("fee", ""))] if "fee" in mapping.columns else [],
            "currency": f"COALESCE({currency}, {default})",
            "at": cols.first(name("date", "")),
        }

    signature = frozenset(v.lower() for v in mapping.columns.values())
    return Layout(
        "csv",
        mapping.provider,
        signature,
        project,
        minor_units=mapping.minor_units,
        decimal=mapping.decimal,
        utf8_only=False,
    )


def _strings(table: object, where: str) -> dict[str, str]:
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise MappingError(f"{where} must map names to column names (strings)")
    return {str(k): str(v) for k, v in table.items()}
