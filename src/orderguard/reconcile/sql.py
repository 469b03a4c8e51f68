"""DuckDB macros shared by every report: amounts to minor units, times, currencies."""

from __future__ import annotations

import duckdb

from orderguard.domain.money import EXPONENTS
from orderguard.reconcile import categories as c

#: How a line was matched to its order, most confident first.
VIAS = ("reference", "order_id", "merchant_reference", "amount_and_date")

#: ``og_clean`` keeps digits, separators and the minus sign ("€ 1.234,50" -> "1.234,50");
#: ``og_point`` rewrites the decimal separator as a point; ``og_micro`` reads an amount as a
#: whole number of millionths (DECIMAL(18, 6): exact, and fast where DECIMAL(38) is not);
#: ``og_whole`` makes that minor units of a currency whose ``unit`` (millionths per minor
#: unit) it is given, NULL when the amount has more decimals than the currency (or, for
#: ``minor`` reports, any decimals); ``og_unit`` looks the unit of an ``og_code`` up without
#: a join (the ENUM's index into a list), so a scan that must keep the file's order can use
#: it, and no power is computed per line.
#: ``og_cell`` is a text cell of a CSV file for spreadsheets (:func:`.cells.neutralise`).
#: Alternatives are written as CASE, not COALESCE: DuckDB evaluates every COALESCE argument
#: for every row, CASE only the branch a row needs (the fallbacks run for odd lines only).
_MACROS = r"""
CREATE OR REPLACE MACRO og_clean(x) AS regexp_replace(x, '[^0-9,.\-]', '', 'g');
CREATE OR REPLACE MACRO og_point(s, d) AS CASE
    WHEN contains(s, ',') AND contains(s, '.') THEN
        CASE WHEN strpos(reverse(s), ',') < strpos(reverse(s), '.')
             THEN replace(replace(s, '.', ''), ',', '.')
             ELSE replace(s, ',', '') END
    WHEN contains(s, ',') THEN
        CASE WHEN d = ',' OR NOT regexp_matches(s, ',[0-9]{3}$')
                  AND length(s) - length(replace(s, ',', '')) = 1
             THEN replace(s, ',', '.')
             ELSE replace(s, ',', '') END
    WHEN d = ',' AND regexp_matches(s, '^-?[0-9]{1,3}(\.[0-9]{3})+$') THEN replace(s, '.', '')
    ELSE s END;
CREATE OR REPLACE MACRO og_micro(x, d) AS CASE
    WHEN d = '.' AND TRY_CAST(TRY_CAST(x AS DECIMAL(18, 6)) * 1000000 AS BIGINT) IS NOT NULL
    THEN TRY_CAST(TRY_CAST(x AS DECIMAL(18, 6)) * 1000000 AS BIGINT)
    ELSE TRY_CAST(TRY_CAST(og_point(og_clean(x), d) AS DECIMAL(18, 6)) * 1000000 AS BIGINT) END;
CREATE OR REPLACE MACRO og_whole(micro, unit, minor) AS CASE
    WHEN minor THEN CASE WHEN micro % 1000000 = 0 THEN micro // 1000000 END
    ELSE CASE WHEN micro % unit = 0 THEN micro // unit END END;
CREATE OR REPLACE MACRO og_cell(x) AS CASE
    WHEN regexp_matches(x, '^[=+\-@\t\r]')
         AND NOT regexp_matches(x, '^[+-]?[0-9]+(\.[0-9]+)?$')
    THEN '''' || x ELSE x END;
CREATE OR REPLACE MACRO og_time(x) AS CASE
    WHEN TRY_CAST(x AS TIMESTAMPTZ) IS NOT NULL THEN TRY_CAST(x AS TIMESTAMPTZ)
    WHEN TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S %z') AS TIMESTAMPTZ) IS NOT NULL
      THEN TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S %z') AS TIMESTAMPTZ)
    WHEN TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S') AS TIMESTAMPTZ) IS NOT NULL
      THEN TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S') AS TIMESTAMPTZ)
    WHEN TRY_CAST(try_strptime(x, '%Y/%m/%d') AS TIMESTAMPTZ) IS NOT NULL
      THEN TRY_CAST(try_strptime(x, '%Y/%m/%d') AS TIMESTAMPTZ)
    WHEN TRY_CAST(try_strptime(x, '%d.%m.%Y %H:%M:%S') AS TIMESTAMPTZ) IS NOT NULL
      THEN TRY_CAST(try_strptime(x, '%d.%m.%Y %H:%M:%S') AS TIMESTAMPTZ)
    WHEN TRY_CAST(try_strptime(x, '%Y年%m月%d日 %H:%M:%S') AS TIMESTAMPTZ) IS NOT NULL
      THEN TRY_CAST(try_strptime(x, '%Y年%m月%d日 %H:%M:%S') AS TIMESTAMPTZ)
    END;
"""


def install(conn: duckdb.DuckDBPyConnection) -> None:
    """Define the macros and the small enumerations (a line's kind, currency code and how
    it was matched: one byte each, where text would be copied from table to table) on
    ``conn``; the currency codes and their units come from the ISO 4217 exponents."""
    conn.execute("SET TimeZone = 'UTC'")
    for statement in _MACROS.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    kinds = (c.CHARGE_KIND, c.REFUND_KIND, c.CHARGEBACK_KIND, c.FEE_KIND, c.PAYOUT_KIND)
    conn.execute(f"CREATE TYPE og_kind AS ENUM ({', '.join(map(repr, (*kinds, c.OTHER_KIND)))})")
    conn.execute(f"CREATE TYPE og_via AS ENUM ({', '.join(map(repr, VIAS))})")
    codes = sorted(EXPONENTS)
    conn.execute(f"CREATE TYPE og_code AS ENUM ({', '.join(repr(code) for code in codes)})")
    units = ", ".join(str(10 ** (6 - EXPONENTS[code])) for code in codes)
    conn.execute(f"CREATE OR REPLACE MACRO og_unit(code) AS [{units}][enum_code(code) + 1]")
