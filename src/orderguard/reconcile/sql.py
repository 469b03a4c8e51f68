"""DuckDB macros shared by every report: amounts to minor units, times, currencies."""

from __future__ import annotations

import duckdb

from orderguard.domain.money import EXPONENTS

#: Keeps digits, separators and the minus sign ("€ 1.234,50" -> "1.234,50").
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
CREATE OR REPLACE MACRO og_scaled(x, e, d, minor) AS
    COALESCE(CASE WHEN d = '.' THEN TRY_CAST(x AS DECIMAL(38, 6)) END,
             TRY_CAST(og_point(og_clean(x), d) AS DECIMAL(38, 6)))
    * CASE WHEN minor THEN 1 WHEN e = 0 THEN 1 WHEN e = 2 THEN 100 WHEN e = 3 THEN 1000
           ELSE 10000 END;
CREATE OR REPLACE MACRO og_minor(v) AS
    CASE WHEN v IS NOT NULL AND v = trunc(v) THEN CAST(v AS BIGINT) END;
CREATE OR REPLACE MACRO og_time(x) AS COALESCE(
    TRY_CAST(x AS TIMESTAMPTZ),
    TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S %z') AS TIMESTAMPTZ),
    TRY_CAST(try_strptime(x, '%Y/%m/%d %H:%M:%S') AS TIMESTAMPTZ),
    TRY_CAST(try_strptime(x, '%Y/%m/%d') AS TIMESTAMPTZ),
    TRY_CAST(try_strptime(x, '%d.%m.%Y %H:%M:%S') AS TIMESTAMPTZ),
    TRY_CAST(try_strptime(x, '%Y年%m月%d日 %H:%M:%S') AS TIMESTAMPTZ));
"""


def install(conn: duckdb.DuckDBPyConnection) -> None:
    """Define the macros and the ISO 4217 exponent table on ``conn``."""
    conn.execute("SET TimeZone = 'UTC'")
    for statement in _MACROS.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("CREATE OR REPLACE TABLE og_currency (code VARCHAR PRIMARY KEY, e INTEGER)")
    conn.executemany("INSERT INTO og_currency VALUES (?, ?)", sorted(EXPONENTS.items()))
