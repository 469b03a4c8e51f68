"""``orderguard reconcile --fetch alipay|wechatpay --date D``: the day's bill downloaded from
the wallet's sandbox (in a thread) through the configured account and reconciled as a file
would be.

Each test pays, refunds and cancels a few orders at the sandbox on day D (two days ago,
China time: its bill is always ready) and stores the orders as orderguard would (its
reference is the trade's ``out_trade_no``), including two orphans: a trade paid at the
wallet whose order orderguard cancelled, and one paid with no order at all. Two orders have
the same amount, so only their references can match them. What the report must say is
computed from what the test did and the sandbox's ``/ledger``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from orderguard.cli import main
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, OrderLine, PaymentAttempt
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.alipay.sandbox.app import create_app as alipay_app
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.config import load_keys, settings_for
from orderguard.providers.bills import CHINA
from orderguard.providers.serving import serve_in_thread
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.lab import sandbox_account
from orderguard.providers.wechatpay.plugin import build
from orderguard.providers.wechatpay.sandbox.app import create_app as wechat_app
from orderguard.providers.wechatpay.sandbox.identity import load_identity
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from tests.conftest import open_storage
from tests.factories import customer
from tests.providers.alipay_support import KeyPairs, alipay_request, key_pairs, make_provider
from tests.providers.wechatpay_kit import charge, identity_dir, receiver, receiver_url

__all__ = ["identity_dir", "key_pairs", "receiver", "receiver_url"]

#: The bill's day: two days ago in China, so its bill is ready whatever the hour.
DAY = datetime.now(CHINA).date() - timedelta(days=2)
#: When the shoppers pay: 13:00 that day in China (05:00 UTC: the same date in both).
PAID_AT = datetime.combine(DAY, time(13, 0), CHINA)
#: Letter -> amount in fen: A and B alike (only references tell them apart), R refunded
#: in part, C cancelled before paying, X paid at the wallet for an order orderguard
#: cancelled, Y paid at the wallet with no order at all.
AMOUNTS = {"A": 2500, "B": 2500, "R": 3000, "C": 1800, "X": 4200, "Y": 990}
#: N: paid the next morning in China (04:00, still the bill's date in UTC): in the next
#: day's bill, so neither matched nor missing in this one.
NEXT_MORNING = datetime.combine(DAY + timedelta(days=1), time(4, 0), CHINA)
REFUNDED = 1000


@dataclass
class Scenario:
    """What the test did at the wallet: letter -> the trade's ``out_trade_no``."""

    refs: dict[str, str] = field(default_factory=dict)


def _order(letter: str, ref: str, provider: str, *, paid: bool, at: datetime = PAID_AT) -> Order:
    amount = AMOUNTS.get(letter, 700)
    order = Order.place(
        currency="CNY",
        lines=[OrderLine("SKU-" + letter, "Item " + letter, 1, amount)],
        customer=customer(),
        at=at,
        order_id=f"ord_{letter}",
    )
    attempt = PaymentAttempt(
        id=f"pay_{letter}",
        order_id=order.id,
        seq=1,
        provider=provider,
        method=f"{provider}_x",
        amount=amount,
        currency="CNY",
        idempotency_key=f"orderguard-pay_{letter}",
        created_at=at,
        updated_at=at,
    )
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=at)
    state = AttemptState.SUCCEEDED if paid else AttemptState.FAILED
    outcome = Outcome(state, provider_ref=ref, amount=amount, currency="CNY")
    apply_outcome(order, attempt, outcome, cause=Cause.API, at=at)
    if not paid:
        order.move_to(OrderState.CANCELLED, cause=Cause.API, at=at)
    return order


def store_orders(url: str, scenario: Scenario, provider: str) -> None:
    """The orders as orderguard holds them: A, B, R paid; C and X cancelled; no Y."""

    async def store() -> None:
        storage = await open_storage(url)
        async with storage() as uow:
            for letter in ("A", "B", "R", "C", "X"):
                paid = letter in ("A", "B", "R")
                await uow.orders.add(_order(letter, scenario.refs[letter], provider, paid=paid))
            late = _order("N", "next-morning-N", provider, paid=True, at=NEXT_MORNING)
            await uow.orders.add(late)
            await uow.commit()
        await storage.close()

    asyncio.run(store())


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["reconcile", *args])
    return result.exit_code, result.output


def check_report(report: Path, refs: dict[str, str], *, provider_refs: set[str]) -> None:
    """The report says what the test did: A, B and R's payments matched by reference, R's
    refund a refund, X and Y (and only they) orphans, nothing missing, C nowhere."""
    document = json.loads(report.read_text())
    counts = document["summary"]["counts"]
    assert counts["matched"] == 3
    assert counts["refund"] == 1
    assert counts["missing_in_orders"] == 2
    assert counts["missing_at_provider"] == counts["duplicate"] == 0
    assert counts["amount_mismatch"] == counts["currency_mismatch"] == 0
    assert document["errors"] == []
    orphans = {(e["category"], e["provider_ref"]) for e in document["exceptions"]}
    assert orphans == {("missing_in_orders", ref) for ref in provider_refs}
    assert refs["C"] not in report.read_text()


def same_as_a_file(report: Path, tmp_path: Path, provider: str, stem: str) -> None:
    """The bill kept with ``--bill-dir``, given as a file with the flags ``--fetch`` implies,
    makes the same report (the file's place aside)."""
    kept = tmp_path / "bills"
    kept.mkdir(exist_ok=True)
    again = tmp_path / "again.json"
    args = ("--fetch", provider, "--date", DAY.isoformat(), "--bill-dir", str(kept))
    code, out = run(*args, "--out", str(again))
    assert code == 0, out
    [bill] = [p for p in kept.iterdir() if p.name.startswith(stem)]
    as_file = tmp_path / "as_file.json"
    # the bill's day is China's: a file's period is UTC unless the times say otherwise
    start, end = f"{DAY}T00:00:00+08:00", f"{DAY}T23:59:59.999999+08:00"
    code, out = run(
        str(bill), "--from", start, "--to", end, "--provider", provider, "--out", str(as_file)
    )
    assert code == 0, out

    def content(path: Path) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(path.read_text())
        for exception in found["exceptions"]:
            exception.pop("file")
        found["summary"].pop("files")
        return found

    assert content(report) == content(again) == content(as_file)
    assert content(report)["summary"]["counts"]["matched"] == 3


# ---------------------------------------------------------------------------------- Alipay


@pytest.fixture
def alipay(tmp_path: Path, key_pairs: KeyPairs, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An Alipay sandbox in a thread, the CLI's settings pointing at it, an empty database."""
    data_dir = tmp_path / "alipay-sandbox"
    key_pairs.write(data_dir)
    config = AlipayConfig(data_dir=str(data_dir), retry_delays_s=(0.05,))
    with serve_in_thread(alipay_app(config), "alipay") as url:
        for name, value in settings_for(config, load_keys(config), url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ORDERGUARD_DATABASE_URL", f"sqlite:///{tmp_path / 'orders.db'}")
        monkeypatch.chdir(tmp_path)
        yield url


async def _pay_at_alipay(
    url: str, pairs: KeyPairs, letters: str = "ABRCXY"
) -> tuple[Scenario, dict[str, Any]]:
    provider = make_provider(url, pairs)
    scenario = Scenario()
    async with httpx.AsyncClient(base_url=url) as admin:
        shift = (PAID_AT - datetime.now(CHINA)).total_seconds()
        (await admin.post("/admin/clock", json={"advance_s": shift})).raise_for_status()
        for letter in letters:
            amount = AMOUNTS[letter]
            request = alipay_request(amount=amount, attempt_id=f"att_{letter}_{DAY:%m%d}")
            result = await provider.create_payment(request)
            ref = scenario.refs[letter] = result.provider_ref
            assert result.redirect_url is not None
            (await admin.get(result.redirect_url)).raise_for_status()  # the cashier opens
            (await admin.post(f"/admin/trades/{ref}/login")).raise_for_status()
            if letter == "C":
                await provider.close_payment(ref)
            else:
                (await admin.post(f"/admin/trades/{ref}/pay")).raise_for_status()
        if "R" in letters:
            await provider.refund(scenario.refs["R"], amount=REFUNDED, idempotency_key="refund_R")
        (await admin.post("/admin/clock", json={"advance_s": -shift})).raise_for_status()
        book: dict[str, Any] = (await admin.get("/ledger")).json()
    await provider.aclose()
    return scenario, book


def test_an_alipay_bill_is_fetched_and_reconciled_like_a_file(
    alipay: str, key_pairs: KeyPairs, tmp_path: Path
) -> None:
    scenario, book = asyncio.run(_pay_at_alipay(alipay, key_pairs))
    store_orders(f"sqlite:///{tmp_path / 'orders.db'}", scenario, "alipay")
    trade_no = {t["out_trade_no"]: t["trade_no"] for t in book["trades"]}
    report = tmp_path / "report.json"
    code, out = run("--fetch", "alipay", "--date", DAY.isoformat(), "--out", str(report))
    assert code == 0, out
    orphans = {trade_no[scenario.refs["X"]], trade_no[scenario.refs["Y"]]}
    check_report(report, scenario.refs, provider_refs=orphans)
    assert "_业务明细.csv" in out and "(汇总)" not in out
    same_as_a_file(report, tmp_path, "alipay", "20881")


def test_alipay_refusals_reconcile_nothing(
    alipay: str, key_pairs: KeyPairs, tmp_path: Path
) -> None:
    asyncio.run(_pay_at_alipay(alipay, key_pairs, letters="A"))
    report = tmp_path / "report.json"
    args = ("--fetch", "alipay", "--date", DAY.isoformat(), "--out", str(report))
    httpx.post(f"{alipay}/admin/faults", json={"bad_sign": 1}).raise_for_status()
    code, out = run(*args)
    assert code == 1 and "signature does not verify" in out and "nothing was reconciled" in out
    httpx.post(f"{alipay}/admin/bills", json={"foreign_host": "203.0.113.9:80"}).raise_for_status()
    code, out = run(*args)
    assert code == 1 and "203.0.113.9" in out and "not followed" in out
    assert not report.exists()
    httpx.post(f"{alipay}/admin/bills", json={"foreign_host": None}).raise_for_status()
    code, out = run("--fetch", "alipay", "--date", (DAY - timedelta(days=1)).isoformat())
    assert code == 1 and "no bill for that day" in out and "isp.bill_not_exist" in out


# ------------------------------------------------------------------------------- WeChat Pay


@dataclass
class Wechat:
    url: str
    app: Any
    notify_url: str


@pytest.fixture
def wechat(
    tmp_path: Path, identity_dir: Path, receiver_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Wechat]:
    """A WeChat Pay sandbox in a thread, the CLI's settings pointing at it, a database."""
    app = wechat_app(WechatConfig(identity_dir, retry_delays_s=(0.05,)))
    with serve_in_thread(app, "wechatpay") as url:
        for name, value in load_identity(identity_dir).config(url, receiver_url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ORDERGUARD_DATABASE_URL", f"sqlite:///{tmp_path / 'orders.db'}")
        monkeypatch.chdir(tmp_path)
        yield Wechat(url, app, receiver_url)


async def _pay_at_wechat(
    found: Wechat, identity: Path, letters: str = "ABRCXY"
) -> tuple[Scenario, dict[str, Any]]:
    """The shoppers pay on DAY: the sandbox's book keeps that time (its signatures the
    real one, which the adapter checks)."""
    book = found.app.state.sandbox.book
    shift = (PAID_AT - datetime.now(CHINA)).total_seconds()
    real = book.clock
    book.clock = lambda: real() + shift
    provider = build(sandbox_account(identity, found.url, found.notify_url), 5.0)
    assert isinstance(provider, WechatPayProvider)
    scenario = Scenario()
    async with httpx.AsyncClient(base_url=found.url) as shopper:
        for letter in letters:
            amount = AMOUNTS[letter]
            attempt = f"att_{letter}_{DAY:%m%d}"
            result = await provider.create_payment(charge(amount=amount, attempt_id=attempt))
            ref = scenario.refs[letter] = result.provider_ref
            (await shopper.post(f"/sandbox/shopper/{ref}/scan")).raise_for_status()
            if letter == "C":
                await provider.close_payment(ref)
            else:
                (await shopper.post(f"/sandbox/shopper/{ref}/pay")).raise_for_status()
        if "R" in letters:
            await provider.refund(scenario.refs["R"], amount=REFUNDED, idempotency_key="refund_R")
        ledger: dict[str, Any] = (await shopper.get("/ledger")).json()
    await provider.aclose()
    book.clock = real
    return scenario, ledger


def test_a_wechatpay_bill_is_fetched_and_reconciled_like_a_file(
    wechat: Wechat, identity_dir: Path, tmp_path: Path
) -> None:
    scenario, ledger = asyncio.run(_pay_at_wechat(wechat, identity_dir))
    store_orders(f"sqlite:///{tmp_path / 'orders.db'}", scenario, "wechatpay")
    transaction = {t["out_trade_no"]: t.get("transaction_id") for t in ledger["trades"]}
    report = tmp_path / "report.json"
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat(), "--out", str(report))
    assert code == 0, out
    orphans = {transaction[scenario.refs["X"]], transaction[scenario.refs["Y"]]}
    check_report(report, scenario.refs, provider_refs=orphans)
    same_as_a_file(report, tmp_path, "wechatpay", "wechatpay_tradebill")
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat(), "--apply")
    assert code == 0 and "2 orphan charges handed to the sweep" in out


@pytest.mark.parametrize(
    ("trouble", "said"),
    [
        ({"bad_hash": True}, "is not the bill, nothing of it is read"),
        ({"bad_sign": True}, "does not verify"),
        ({"foreign_host": "203.0.113.9:80"}, "not followed"),
    ],
)
def test_a_tampered_wechatpay_bill_is_refused_and_nothing_reconciled(
    wechat: Wechat, identity_dir: Path, tmp_path: Path, trouble: dict[str, Any], said: str
) -> None:
    asyncio.run(_pay_at_wechat(wechat, identity_dir, letters="A"))
    httpx.post(f"{wechat.url}/sandbox/admin/bills", json=trouble).raise_for_status()
    report = tmp_path / "report.json"
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat(), "--out", str(report))
    assert code == 1, out
    assert said in out and "nothing was reconciled" in out
    assert not report.exists()


def test_wechatpay_refusals_in_chinese(wechat: Wechat) -> None:
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat(), "--locale", "zh-CN")
    assert code == 1 and "该日没有账单" in out and "NO_STATEMENT_EXIST" in out


# ----------------------------------------------------------------------- the command's checks


@pytest.fixture
def nothing_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERGUARD_ALIPAY_APP_ID", "ORDERGUARD_WECHATPAY_MCHID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORDERGUARD_DATABASE_URL", f"sqlite:///{tmp_path / 'orders.db'}")
    monkeypatch.chdir(tmp_path)


def test_an_unconfigured_wallet_is_named_with_its_variable(nothing_configured: None) -> None:
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat())
    assert code == 1 and "ORDERGUARD_WECHATPAY_MCHID" in out


@pytest.mark.parametrize(
    ("day", "said"),
    [
        ("2026-13-01", "is not a date"),
        ("yesterday", "is not a date"),
        ((date.today() + timedelta(days=3)).isoformat(), "is in the future"),
        (datetime.now(CHINA).date().isoformat(), "is not over yet in China"),
    ],
)
def test_a_day_without_a_bill_is_refused_before_anything_is_sent(
    nothing_configured: None, day: str, said: str
) -> None:
    code, out = run("--fetch", "alipay", "--date", day)
    assert code == 2 and said in out


def test_fetch_and_files_do_not_mix(nothing_configured: None, tmp_path: Path) -> None:
    report = tmp_path / "x.csv"
    report.write_text("a,b\n")
    assert run(str(report), "--fetch", "alipay", "--date", DAY.isoformat())[0] == 2
    assert run("--fetch", "alipay")[0] == 2
    assert run("--date", DAY.isoformat(), str(report))[0] == 2
    assert run()[0] == 2


def test_an_unreachable_wallet_is_a_clear_error(
    nothing_configured: None, identity_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (
        load_identity(identity_dir).config("http://127.0.0.1:9", "https://shop.test/hooks").items()
    ):
        monkeypatch.setenv(name, value)
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat())
    assert code == 1 and "could not be reached" in out


def test_another_account_name_is_refused(wechat: Wechat) -> None:
    code, out = run("--fetch", "wechatpay", "--date", DAY.isoformat(), "--account", "other")
    assert code == 1 and "no configured account is named 'other'" in out
