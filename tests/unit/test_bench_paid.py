"""The paid-orders benchmark's own logic, without running it: the all-in count waits until
every webhook the sandbox created is stored processed, and the section states issue 20's
two targets for the headline (no webhooks) and the webhooks variant, each met or not."""

from __future__ import annotations

import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import paid  # noqa: E402


def _event(conn: psycopg.Connection[Any], n: int, *, processed: bool) -> None:
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO webhook_events (id, provider, event_id, type, headers, body, received_at, "
        "processed_at) VALUES (%s, 'stripe', %s, 'charge.succeeded', '{}', '{}', %s, %s)",
        (f"whe_{n}", f"evt_{n}", now, now if processed else None),
    )


@pytest.mark.postgres
def test_all_in_waits_for_every_event_of_the_ledger_to_be_processed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = {"events": [{"id": f"evt_{n}"} for n in range(3)]}
    monkeypatch.setattr(paid, "DRAIN_TIMEOUT", 0.3)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _event(conn, 0, processed=True)
        _event(conn, 1, processed=True)
        _event(conn, 2, processed=False)
        with pytest.raises(RuntimeError, match="2 of the sandbox's 3 webhooks processed"):
            paid._all_in(pg_url, os.getpid(), "webhooks", ledger, started=0.0, cpu_before=0.0)
        conn.execute("UPDATE webhook_events SET processed_at = received_at")
    counted = paid._all_in(pg_url, os.getpid(), "webhooks", ledger, started=0.0, cpu_before=0.0)
    assert (counted["events"], counted["processed"], counted["paid_orders"]) == (3, 3, 0)
    assert counted["server_cpu"] > 0 and math.isnan(counted["ms_per_order"])


@pytest.mark.postgres
def test_all_in_waits_for_nothing_without_webhooks(pg_url: str) -> None:
    ledger = {"events": [{"id": "evt_0"}]}  # created, but this variant sends none
    counted = paid._all_in(pg_url, os.getpid(), "external", ledger, started=0.0, cpu_before=0.0)
    assert (counted["events"], counted["processed"]) == (0, 0)


def _run(rps: float, server: float, allin_ms: float, errors: int = 0) -> dict[str, Any]:
    allin = {
        "server_cpu": 1.0, "seconds": 4.0, "drain_seconds": 0.5, "paid_orders": 100,
        "events": 300, "processed": 300, "ms_per_order": allin_ms,
    }  # fmt: skip
    statuses = {"201": 100, **({"503": errors} if errors else {})}
    return {"rps": rps, "cpu": {"server": server}, "allin": allin, "errors": errors,
            "statuses": statuses, "conn_errors": 0}  # fmt: skip


def _intake(rps: float, server: float) -> dict[str, Any]:
    return {"rounds": [{"intake": {"rps": rps, "cpu": {"server": server}}}]}


def _row(lines: list[str], mode: str) -> list[str]:
    found = [line for line in lines if line.startswith(f"| {paid.LABEL[mode]} |")]
    assert len(found) == 1
    return [cell.strip() for cell in found[0].strip("|").split("|")]


def test_targets_judge_the_headline_by_its_window_and_webhooks_all_in() -> None:
    results = {
        "rounds": [
            {
                # 600 paid/s at 0.6 cores: 1.0 ms per paid order in the window
                "external": _run(600.0, 0.6, allin_ms=9.0),
                # 400 paid/s; 2.5 ms per paid order once its webhooks are counted
                "webhooks": _run(400.0, 0.2, allin_ms=2.5),
                "inprocess": _run(500.0, 0.9, allin_ms=1.8),
            }
        ]
    }
    lines = paid._targets(results, _intake(1000.0, 1.0))  # 1.0 ms per unpaid order
    headline, hooks = _row(lines, "external"), _row(lines, "webhooks")
    assert headline[2:4] == ["0.60", "**MET**"]
    assert headline[4].startswith("1.00 (window)") and headline[5:7] == ["1.00", "**MET**"]
    assert hooks[2:4] == ["0.40", "**NOT MET**"]
    assert hooks[4].startswith("2.50 (all in") and hooks[5:7] == ["2.50", "**NOT MET**"]


def test_targets_without_the_intake_section_say_so() -> None:
    results = {"rounds": [{m: _run(100.0, 0.5, allin_ms=5.0) for m in paid.MODES}]}
    lines = paid._targets(results, None)
    assert _row(lines, "webhooks")[2:4] == ["n/a", "n/a"]
    assert any("the intake section did not run" in line for line in lines)


def test_the_headline_is_also_judged_against_the_unpaid_run_of_its_own_round() -> None:
    """Round by round: round 1 paid 500/s at 1.6 ms against unpaid 800/s at 1.0 ms (0.625,
    1.6); round 2 paid 300/s at 2.4 ms against unpaid 800/s at 1.0 ms (0.375, 2.4); round 3
    paid 450/s at 1.8 ms against unpaid 900/s at 1.0 ms (0.5, 1.8). Medians 0.5 and 1.8."""
    rounds = [
        {"unpaid": _run(800.0, 0.8, 0.0), "external": _run(500.0, 0.8, 0.0)},
        {"unpaid": _run(800.0, 0.8, 0.0), "external": _run(300.0, 0.72, 0.0)},
        {"unpaid": _run(900.0, 0.9, 0.0), "external": _run(450.0, 0.81, 0.0)},
    ]
    [line] = paid._same_round({"rounds": rounds})
    assert "orders/s = 0.50 (per round: 0.62, 0.38, 0.50; target >= 0.5: **MET**)" in line
    assert "= 1.80 (per round: 1.60, 2.40, 1.80; target <= 2: **MET**)" in line


def test_rounds_without_an_unpaid_run_add_nothing() -> None:
    rounds = [{m: _run(100.0, 0.5, allin_ms=5.0) for m in paid.MODES}]
    assert paid._same_round({"rounds": rounds}) == []


def test_unpaid_runs_with_errors_give_no_verdict() -> None:
    """An unpaid run that lost requests would lower the baseline the paid runs are held to."""
    rounds = [
        {"unpaid": _run(800.0, 0.8, 0.0), "external": _run(500.0, 0.8, 0.0)},
        {"unpaid": _run(600.0, 0.8, 0.0, errors=7), "external": _run(500.0, 0.8, 0.0)},
    ]
    [line] = paid._same_round({"rounds": rounds})
    assert "n/a" in line and "rounds 2: HTTP 503: 7" in line and "MET" not in line


def test_every_run_lists_the_unpaid_runs_with_the_loops_wait() -> None:
    """The every-run table has a row for each round's unpaid run beside the paid ones, and
    the event loop's wait for a CPU in its own column; every row has the header's cells."""

    def run(rps: float, waiting: float) -> dict[str, Any]:
        cpu = {"server": 0.7, "server.main": 0.7, "waiting.server.main": waiting,
               "server.threads": 0.0, "sandbox": 0.3, "postgres": 0.5, "loadgen": 0.03,
               "machine": 1.55, "other": 0.02, "steal": 0.0}  # fmt: skip
        return {"rps": rps, "p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0, "errors": 0,
                "cpu": cpu}  # fmt: skip

    outcome = {"unpaid": run(1000.0, 0.08), **{m: run(400.0, 0.24) for m in paid.MODES}}
    lines = paid._every_run({"rounds": [outcome]})
    table = [line for line in lines if line.startswith("|")]
    header, rows = table[0], table[2:]
    cells = header.count("|")
    assert all(line.count("|") == cells for line in table), table
    assert [row.split("|")[2].strip() for row in rows] == ["unpaid", *paid.MODES]
    wait_column = [c.strip() for c in header.split("|")].index("its wait for a CPU")
    assert [row.split("|")[wait_column].strip() for row in rows] == ["0.08"] + ["0.24"] * len(
        paid.MODES
    )
    assert rows[0].split("|")[3].strip() == "1,000"
