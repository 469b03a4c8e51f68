"""The wallet benchmarks' own logic, without running them: ``bench/run.py --only`` replaces
only its sections of docs/benchmarks.md, and the paid-orders oracle catches every way an
order and the wallet's ledger can disagree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
import wallet_paid  # noqa: E402

DOC = """# Benchmarks

header

## Order intake: POST /v1/orders on PostgreSQL

intake text

## {paid}

old wallet text
more

## The demo: 1000 checkouts through the storm (SQLite, sandbox storm profile)

demo text
"""


def _doc() -> str:
    return DOC.format(paid=wallet_paid.TITLE)


def test_only_replaces_its_own_section_and_keeps_the_others() -> None:
    fresh = f"## {wallet_paid.TITLE}\n\nnew wallet text"
    out = run.splice(_doc(), {"wallet_paid": fresh})
    assert "old wallet text" not in out and "more" not in out
    assert "new wallet text\n\n## The demo" in out
    assert out.startswith("# Benchmarks\n\nheader\n\n## Order intake") and "intake text" in out
    assert out.endswith("demo text\n")
    assert run.splice(out, {"wallet_paid": fresh}) == out  # the same run twice: no drift


def test_a_section_the_document_lacks_goes_before_the_next_one_it_has() -> None:
    import wallet_janitor

    fresh = f"## {wallet_janitor.TITLE}\n\njanitor text"
    out = run.splice(_doc(), {"wallet_janitor": fresh})
    headings = [line for line in out.splitlines() if line.startswith("## ")]
    assert (
        headings.index(f"## {wallet_janitor.TITLE}")
        == headings.index(
            "## The demo: 1000 checkouts through the storm (SQLite, sandbox storm profile)"
        )
        - 1
    )
    assert "old wallet text" in out and "janitor text\n\n## The demo" in out


ROWS = [("ord_1", "paid", 3998, "ref_1"), ("ord_2", "action_required", 3998, "ref_2")]


def _check(
    rows: list[Any],
    trades: list[dict[str, Any]],
    seen: list[str],
    wallet: str = "alipay",
    notified: list[str] | None = None,
) -> dict[str, Any]:
    """``wallet_paid.check`` with PostgreSQL answering ``rows``; the sandbox delivered a
    payment notification for each paid trade (or for ``notified`` when given)."""
    paid = [
        t["out_trade_no"]
        for t in trades
        if t.get("status", t.get("trade_state"))
        in (
            "TRADE_SUCCESS",
            "SUCCESS",
        )
    ]
    status = "TRADE_SUCCESS" if wallet == "alipay" else None
    notifications = [
        {"out_trade_no": ref, "delivered": True, "trade_status": status}
        if status
        else {"out_trade_no": ref, "delivered": True, "event_type": "TRANSACTION.SUCCESS"}
        for ref in (paid if notified is None else notified)
    ]
    book = {"trades": trades, "notifications": notifications}

    class Conn:
        def __enter__(self) -> Conn:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def execute(self, sql: bytes) -> Any:
            class Cursor:
                def fetchall(self) -> list[Any]:
                    return rows

            return Cursor()

    import psycopg

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(psycopg, "connect", lambda *a, **k: Conn())
        return wallet_paid.check("postgresql://x", wallet, book, {"paid_ids": seen})


def _trade(ref: str, status: str = "TRADE_SUCCESS", fen: int = 3998) -> dict[str, Any]:
    return {"out_trade_no": ref, "status": status, "total_fen": fen}


def test_the_oracle_passes_a_run_that_matches_the_ledger() -> None:
    found = _check(ROWS, [_trade("ref_1"), _trade("ref_2", "WAIT_BUYER_PAY")], ["ord_1"])
    assert found["problem_count"] == 0
    assert found["by_state"] == {"action_required": 1, "paid": 1} and found["paid_trades"] == 1


@pytest.mark.parametrize(
    ("trades", "seen", "problem"),
    [
        ([], ["ord_1"], "ord_1 paid with 0 paid trades"),
        ([_trade("ref_1", fen=100)], ["ord_1"], "ord_1 paid with 1 paid trades"),
        ([_trade("ref_1"), _trade("ref_1")], ["ord_1"], "ord_1 paid with 2 paid trades"),
        ([_trade("ref_1"), _trade("ref_2")], ["ord_1"], "ord_2 is action_required but"),
        ([_trade("ref_1"), _trade("ref_9")], ["ord_1"], "1 paid trades without a paid order"),
        ([_trade("ref_1")], ["ord_1", "ord_2"], "1 orders seen paid are not paid"),
    ],
)
def test_the_oracle_names_every_disagreement(
    trades: list[dict[str, Any]], seen: list[str], problem: str
) -> None:
    found = _check(ROWS, trades, seen)
    assert any(p.startswith(problem) for p in found["problems"]), found["problems"]


def test_the_oracle_reads_wechat_pay_trades_too() -> None:
    rows = [("ord_1", "paid", 3998, "pay_1")]
    trade = {"out_trade_no": "pay_1", "trade_state": "SUCCESS", "amount": {"total": 3998}}
    found = _check(rows, [trade], ["ord_1"], wallet="wechatpay")
    assert found["problem_count"] == 0 and found["paid_trades"] == 1
    unpaid = {**trade, "trade_state": "NOTPAY"}
    problems = _check(rows, [unpaid], ["ord_1"], wallet="wechatpay")["problems"]
    assert problems[0].startswith("ord_1 paid with 0 paid trades")


@pytest.mark.parametrize("wallet", ["alipay", "wechatpay"])
def test_the_oracle_wants_the_notification_that_paid_each_wallet_order(wallet: str) -> None:
    rows = [("ord_1", "paid", 3998, "ref_1")]
    trade = (
        _trade("ref_1")
        if wallet == "alipay"
        else {"out_trade_no": "ref_1", "trade_state": "SUCCESS", "amount": {"total": 3998}}
    )
    assert _check(rows, [trade], ["ord_1"], wallet=wallet)["problem_count"] == 0
    found = _check(rows, [trade], ["ord_1"], wallet=wallet, notified=[])
    assert found["problems"] == ["1 paid orders without a delivered payment notification"]


def test_a_section_run_alone_says_what_measured_it_and_when() -> None:
    """With ``--only`` the file's header names an older run: each new section says which
    command measured it and when, under its heading, unless it already does."""
    command = ".venv/bin/python bench/run.py --only paid --rounds 5"
    fresh = "## Paid orders end to end\n\nThe intake load above, ..."
    out = run.dated(fresh, command, "2026-12-06 06:35 UTC")
    assert out.split("\n")[:4] == [
        "## Paid orders end to end",
        "",
        f"Measured by `{command}` on 2026-12-06 06:35 UTC.",
        "",
    ]
    assert out.endswith("The intake load above, ...")
    # a section that names its own measurement is left as it is
    own = f"## {wallet_paid.TITLE}\n\nMeasured by `{command}` on 2026-12-06 06:35 UTC. ..."
    assert run.dated(own, command, "2026-12-06 06:35 UTC") == own
