"""The run's outcome for people: a terminal summary, exceptions as CSV or JSON, HTML."""

from __future__ import annotations

import csv
import html
import shutil
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from orderguard.domain.money import EXPONENTS
from orderguard.reconcile import categories as c
from orderguard.reconcile.cells import neutralise
from orderguard.reconcile.engine import Engine, Outcome, Result
from orderguard.reconcile.messages import text

#: Exceptions listed on the HTML page (all of them are in the CSV or JSON file).
_HTML_ROWS = 1000
#: Columns of the exceptions file, in order.
EXCEPTION_FIELDS = (
    "category",
    "file",
    "line",
    "order_id",
    "provider_ref",
    "order_ref",
    "amount",
    "currency",
    "expected_amount",
    "expected_currency",
    "fee",
    "via",
    "at",
)


def money(amount: int | None, currency: str | None) -> str:
    """``amount`` minor units as a decimal string in ``currency`` ("12.50 EUR")."""
    if amount is None:
        return "-"
    digits = EXPONENTS.get(currency or "", 2)
    sign, value = ("-" if amount < 0 else ""), abs(amount)
    whole, cents = divmod(value, 10**digits) if digits else (value, 0)
    frac = f".{cents:0{digits}d}" if digits else ""
    return f"{sign}{whole}{frac} {currency or ''}".strip()


def print_summary(outcome: Outcome, console: Console, *, locale: str = "en") -> None:
    """Counts and totals per category and currency, the period and the files (with their
    lines), then the lines not reconciled."""
    table = Table(title=text("title", locale))
    for key in ("category", "currency", "lines", "gross", "fee_total", "net"):
        table.add_column(
            text(key, locale), justify="left" if key in ("category", "currency") else "right"
        )
    for total in outcome.totals:
        table.add_row(
            text(total.category, locale),
            total.currency,
            str(total.count),
            money(total.gross, total.currency),
            money(total.fee, total.currency),
            money(total.net, total.currency),
        )
    console.print(table)
    start, end = (t.isoformat() if t else "-" for t in (outcome.period_from, outcome.period_to))
    console.print(f"{text('period', locale)}: {start}/{end}", markup=False, highlight=False)
    files = ", ".join(f"{name} ({n})" for name, n in outcome.file_lines.items())
    console.print(f"{text('files', locale)}: {files or '-'}", markup=False, highlight=False)
    exceptions = sum(outcome.counts[k] for k in c.EXCEPTIONS)
    console.print(f"{text('exceptions', locale)}: {exceptions}")
    if outcome.errors:
        console.print(f"[bold red]{text('errors', locale)}: {len(outcome.errors)}[/]")
        for error in outcome.errors[:50]:
            console.print(
                f"  {error.file}:{error.line}: {error.message}", markup=False, highlight=False
            )
        if len(outcome.errors) > 50:
            console.print(f"  … {len(outcome.errors) - 50} more in the exceptions file")


def row_of(result: Result) -> dict[str, Any]:
    """One exception as a flat mapping (the CSV and JSON rows)."""
    return {
        "category": result.category,
        "file": result.file,
        "line": result.line,
        "order_id": result.order_id,
        "provider_ref": result.provider_ref,
        "order_ref": result.order_ref,
        "amount": result.amount,
        "currency": result.currency,
        "expected_amount": result.expected_amount,
        "expected_currency": result.expected_currency,
        "fee": result.fee,
        "via": result.via,
        "at": result.at.isoformat() if result.at else None,
    }


def summary(outcome: Outcome) -> dict[str, Any]:
    """What the terminal shows, for a script: the period, the files and their lines, the
    counts per category, and per category and currency the lines and their gross, fee and
    net (integers in the currency's minor units, as the exceptions' amounts are)."""
    unopened = [str(name) for name in outcome.extra.get("unopened", [])]
    return {
        "provider": outcome.extra.get("provider"),
        "period": {
            "from": outcome.period_from.isoformat() if outcome.period_from else None,
            "to": outcome.period_to.isoformat() if outcome.period_to else None,
        },
        "files": [
            {"file": name, "lines": outcome.file_lines.get(name, 0), "read": True}
            for name in outcome.files
        ]
        + [{"file": name, "lines": 0, "read": False} for name in unopened],
        "lines": sum(outcome.file_lines.values()),
        "counts": dict(outcome.counts),
        "exceptions": sum(outcome.counts[k] for k in c.EXCEPTIONS),
        "errors": len(outcome.errors),
        "totals": [
            {
                "category": t.category,
                "currency": t.currency,
                "count": t.count,
                "gross": t.gross,
                "fee": t.fee,
                "net": t.net,
            }
            for t in outcome.totals
        ],
    }


def summary_path(path: Path) -> Path:
    """Where the summary of an exceptions CSV file goes: ``x.csv`` -> ``x.summary.json``
    (beside it, so the CSV stays plain rows any CSV reader takes)."""
    return path.with_name(path.stem + ".summary.json")


def write_exceptions(engine: Engine, outcome: Outcome, path: Path) -> int:
    """Write the exceptions and the lines not reconciled to ``path`` (.csv or .json), with
    the run's :func:`summary`; return how many exceptions.

    DuckDB writes the exceptions (any number of them, in bounded memory); the lines not
    reconciled follow, with their error, as rows of category ``unreadable``. A JSON file
    holds the summary under ``summary``; a CSV file's summary is :func:`summary_path`.
    """
    errors = [
        {"category": "unreadable", "file": e.file, "line": e.line, "error": e.message}
        for e in outcome.errors
    ]
    if path.suffix.lower() == ".json":
        part = path.with_name(path.name + ".part")
        count = engine.copy_results(part, json=True)
        with path.open("wb") as sink, part.open("rb") as exceptions:
            sink.write(b'{"summary": ' + orjson.dumps(summary(outcome)) + b', "exceptions": ')
            shutil.copyfileobj(exceptions, sink)
            sink.write(b', "errors": ' + orjson.dumps(errors) + b"}")
        part.unlink()
        return count
    count = engine.copy_results(path)
    with path.open("a", encoding="utf-8", newline="") as sink:
        writer = csv.DictWriter(sink, fieldnames=[*EXCEPTION_FIELDS, "error"])
        writer.writerows({k: neutralise(v) for k, v in error.items()} for error in errors)
    summary_path(path).write_bytes(
        orjson.dumps(summary(outcome), option=orjson.OPT_INDENT_2) + b"\n"
    )
    return count


def write_html(engine: Engine, outcome: Outcome, path: Path, *, locale: str = "en") -> None:
    """A self-contained page: totals per category and currency, a chart, the exceptions."""

    def t(key: str) -> str:
        return html.escape(text(key, locale))

    rows = "".join(
        f"<tr><td>{t(x.category)}</td><td>{x.currency}</td><td>{x.count}</td>"
        f"<td>{money(x.gross, x.currency)}</td><td>{money(x.fee, x.currency)}</td>"
        f"<td>{money(x.net, x.currency)}</td></tr>"
        for x in outcome.totals
    )
    exceptions: list[str] = []
    for batch in engine.results():
        if len(exceptions) >= _HTML_ROWS:
            break
        for r in batch[: _HTML_ROWS - len(exceptions)]:
            exceptions.append(
                f"<tr><td>{t(r.category)}</td><td>{html.escape(r.place)}</td>"
                f"<td>{html.escape(r.order_id or '-')}</td>"
                f"<td>{html.escape(r.provider_ref or '-')}</td>"
                f"<td>{money(r.amount, r.currency)}</td>"
                f"<td>{money(r.expected_amount, r.expected_currency)}</td></tr>"
            )
    errors = "".join(
        f"<li>{html.escape(e.file)}:{e.line}: {html.escape(e.message)}</li>"
        for e in outcome.errors[:1000]
    )
    period = f"{outcome.period_from or '-'} to {outcome.period_to or '-'}"
    path.write_text(
        _PAGE.format(
            lang=locale,
            title=t("title"),
            files=html.escape(", ".join(outcome.files)),
            period=html.escape(period),
            chart=_chart(outcome, locale),
            head="".join(
                f"<th>{t(k)}</th>"
                for k in ("category", "currency", "lines", "gross", "fee_total", "net")
            ),
            rows=rows,
            exceptions_title=t("exceptions"),
            exceptions="".join(exceptions),
            errors_title=t("errors"),
            errors=errors or "<li>0</li>",
        ),
        encoding="utf-8",
    )


def _chart(outcome: Outcome, locale: str) -> str:
    """A horizontal bar per category (lines), as inline SVG."""
    items = [(k, n) for k, n in outcome.counts.items() if n]
    if not items:
        return ""
    top = max(n for _, n in items)
    bars = []
    for i, (key, n) in enumerate(items):
        width = max(1, round(360 * n / top))
        colour = (
            "#2e7d32" if key == c.MATCHED else ("#c62828" if key in c.EXCEPTIONS else "#546e7a")
        )
        y = i * 26
        bars.append(
            f'<text x="0" y="{y + 16}" font-size="13">{html.escape(text(key, locale))}</text>'
            f'<rect x="240" y="{y + 4}" width="{width}" height="16" fill="{colour}"/>'
            f'<text x="{248 + width}" y="{y + 16}" font-size="13">{n}</text>'
        )
    height = 26 * len(items)
    return (
        f'<svg role="img" width="700" height="{height}" viewBox="0 0 700 {height}">'
        + "".join(bars)
        + "</svg>"
    )


_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
</style></head><body>
<h1>{title}</h1><p>{files}</p><p>{period}</p>
{chart}
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>{exceptions_title}</h2>
<table><tbody>{exceptions}</tbody></table>
<h2>{errors_title}</h2><ul>{errors}</ul>
</body></html>
"""
