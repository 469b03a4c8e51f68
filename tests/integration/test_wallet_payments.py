"""A wallet payment end to end, for Alipay and WeChat Pay: the real app on SQLite, the
wallet's adapter as the registry builds it, and the wallet's own sandbox in-process, whose
ledger is the oracle. The shopper pays outside the shop (Alipay's cashier, a WeChat QR
code); the notification settles the order, or, when it is lost, the recheck's active
query does; an order nobody paid is closed at the wallet, then cancelled; a payment made
just before the close wins over it; one made after the close (the close lost the race) is
refunded by the sweep, once (flagged when refunds are off); a forged notification changes
nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from orderguard.bootstrap import Container, build_app, new_worker, slot, wire
from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.providers import registry
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.config import load_keys, settings_for
from orderguard.providers.alipay.sandbox.server import run_sandbox as run_alipay
from orderguard.providers.base import DelegatingProvider, PaymentResult
from orderguard.providers.plugin import AccountProvider
from orderguard.providers.stripe.sandbox.server import serve_in_thread
from orderguard.providers.wechatpay.sandbox.identity import load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox as run_wechatpay
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from orderguard.services.expiry import expire_abandoned
from orderguard.services.providers import Providers
from orderguard.services.sweep import Sweeper
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body

#: What the shop's order costs (tests.factories' two lines), in fen.
TOTAL_FEN = 2 * 1999
#: How long a shopper has (``action_expiry_minutes``), and a moment past it.
EXPIRY = timedelta(minutes=30)
PAST_EXPIRY = EXPIRY + timedelta(minutes=2)


@dataclass
class Notifications:
    """The shop's notify URL as the sandbox reaches it: keeps each notification to be
    delivered to orderguard (or lost) by the test; answers ``success`` so none is resent."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.append((await request.body(), dict(request.headers)))
            return PlainTextResponse("success")

        return Starlette(routes=[Route("/notify", receive, methods=["POST"])])

    async def first(self, timeout_s: float = 10.0) -> tuple[bytes, dict[str, str]]:
        deadline = time.monotonic() + timeout_s
        while not self.received and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.received, "the sandbox sent no notification"
        return self.received[0]


class LastMoment(DelegatingProvider):
    """The wallet's adapter unchanged, except that the shopper may act (``before_close``)
    right before the shop closes a trade: the race of a payment against the close."""

    def __init__(self, inner: AccountProvider) -> None:
        super().__init__(inner)
        self.livemode = inner.livemode
        self.before_close: Callable[[str], Awaitable[None]] | None = None

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        if self.before_close is not None:
            await self.before_close(provider_ref)
        return await self.inner.cancel_payment(provider_ref)


class Wallet:
    """One wallet's sandbox and what its simulated shopper does there (over plain HTTP on
    loopback: the clients load no certificate store, ~0.15 s each)."""

    name: str
    method: str
    #: The ``next_action``'s type and the field of its URL (a page to open, a code to scan).
    action: tuple[str, str]
    settings: dict[str, Any]
    sandbox: str

    async def pays(self, ref: str, next_action: str) -> None:
        """The shopper opens the page or scans the code, then pays."""
        await self.opens(ref, next_action)
        await self.act(ref, "pay")

    async def opens(self, ref: str, next_action: str) -> None:
        raise NotImplementedError

    async def act(self, ref: str, step: str) -> httpx.Response:
        raise NotImplementedError

    async def trades(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def paid_fen(self, ref: str) -> list[int]:
        """The amounts the ledger holds as paid for ``ref`` (one entry per charge)."""
        raise NotImplementedError

    async def closed(self, ref: str) -> bool:
        """Whether the trade is closed, or was never created (nothing can be paid)."""
        raise NotImplementedError

    async def after_expiry(self) -> None:
        """The wallet's clock passes the payment's expiry."""

    def forged(self, body: bytes) -> bytes:
        """A notification altered after it was signed."""
        raise NotImplementedError

    def accepted(self, reply: httpx.Response) -> None:
        """What the wallet needs to read to stop resending a notification."""
        assert reply.status_code == 200, reply.text

    async def close_will_lose(self, ref: str, next_action: str) -> None:
        """Set up a close that leaves the trade payable (the race a close can lose)."""
        raise NotImplementedError

    async def pays_late(self, ref: str, next_action: str) -> None:
        """The shopper pays after the shop closed the trade."""
        raise NotImplementedError

    async def refunded_fen(self, ref: str) -> list[int]:
        """The amounts of the refunds the ledger holds for ``ref`` (one entry each)."""
        raise NotImplementedError


class Alipay(Wallet):
    name, method = "alipay", "alipay_page"
    action = ("redirect", "redirect_url")

    def __init__(self, sandbox: str, data_dir: Path, notify_url: str) -> None:
        config = AlipayConfig(data_dir=str(data_dir))
        found = settings_for(config, load_keys(config), sandbox)
        self.settings = {k.removeprefix("ORDERGUARD_").lower(): v for k, v in found.items()}
        self.settings["alipay_notify_url"] = notify_url
        self.sandbox = sandbox

    async def opens(self, ref: str, next_action: str) -> None:
        async with httpx.AsyncClient(verify=False) as browser:
            assert (await browser.get(next_action)).status_code == 200
        assert (await self.act(ref, "login")).status_code == 200

    async def act(self, ref: str, step: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as admin:
            return await admin.post(f"/admin/trades/{ref}/{step}")

    async def trades(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as admin:
            found: list[dict[str, Any]] = (await admin.get("/ledger")).json()["trades"]
            return found

    async def paid_fen(self, ref: str) -> list[int]:
        return [
            t["total_fen"]
            for t in await self.trades()
            if t["out_trade_no"] == ref and t["status"] in ("TRADE_SUCCESS", "TRADE_FINISHED")
        ]

    async def closed(self, ref: str) -> bool:
        mine = [t for t in await self.trades() if t["out_trade_no"] == ref]
        return all(t["status"] == "TRADE_CLOSED" for t in mine)

    async def after_expiry(self) -> None:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as admin:
            moved = await admin.post("/admin/clock", json={"advance_s": PAST_EXPIRY.seconds})
            moved.raise_for_status()

    def forged(self, body: bytes) -> bytes:
        return body.replace(b"total_amount=39.98", b"total_amount=39.99")

    async def close_will_lose(self, ref: str, next_action: str) -> None:
        """Nothing: the shopper has not opened the cashier yet, so the trade does not
        exist when it is closed (``ACQ.TRADE_NOT_EXIST``), and the cashier URL still pays."""

    async def pays_late(self, ref: str, next_action: str) -> None:
        await self.pays(ref, next_action)

    async def refunded_fen(self, ref: str) -> list[int]:
        async with httpx.AsyncClient(base_url=self.sandbox) as admin:
            found = (await admin.get("/ledger")).json()["refunds"]
        return [r["fen"] for r in found if r["out_trade_no"] == ref]

    def accepted(self, reply: httpx.Response) -> None:
        assert (reply.status_code, reply.text) == (200, "success")
        assert reply.headers["content-type"].startswith("text/plain")


class WechatPay(Wallet):
    name, method = "wechatpay", "wechatpay_native"
    action = ("scan_qr_code", "code_url")

    def __init__(self, sandbox: str, data_dir: Path, notify_url: str) -> None:
        found = load_identity(data_dir).config(sandbox, notify_url)
        self.settings = {k.removeprefix("ORDERGUARD_").lower(): v for k, v in found.items()}
        self.sandbox = sandbox

    async def opens(self, ref: str, next_action: str) -> None:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as phone:
            scanned = await phone.post("/sandbox/scan", json={"code_url": next_action})
        assert scanned.status_code == 200, scanned.text

    async def act(self, ref: str, step: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as phone:
            return await phone.post(f"/sandbox/shopper/{ref}/{step}")

    async def trades(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sandbox, verify=False) as admin:
            found: list[dict[str, Any]] = (await admin.get("/ledger")).json()["trades"]
            return found

    async def paid_fen(self, ref: str) -> list[int]:
        return [
            t["amount"]["total"]
            for t in await self.trades()
            if t["out_trade_no"] == ref and t["trade_state"] in ("SUCCESS", "REFUND")
        ]

    async def closed(self, ref: str) -> bool:
        mine = [t for t in await self.trades() if t["out_trade_no"] == ref]
        return all(t["trade_state"] == "CLOSED" for t in mine)

    def forged(self, body: bytes) -> bytes:
        """The same payment under a new event id: a replay dressed as a new event."""
        return json.dumps({**json.loads(body), "id": "EV-FORGED"}).encode()

    async def close_will_lose(self, ref: str, next_action: str) -> None:
        """The shopper scans the code and starts paying; the sandbox's close will be
        answered 204 while that payment still lands (``payment_beats_close``)."""
        await self.opens(ref, next_action)
        async with httpx.AsyncClient(base_url=self.sandbox) as admin:
            switched = await admin.post("/sandbox/admin", json={"payment_beats_close": True})
        switched.raise_for_status()

    async def pays_late(self, ref: str, next_action: str) -> None:
        paid = await self.act(ref, "pay")
        assert paid.status_code == 200, paid.text

    async def refunded_fen(self, ref: str) -> list[int]:
        async with httpx.AsyncClient(base_url=self.sandbox) as admin:
            found = (await admin.get("/ledger")).json()["refunds"]
        return [r["amount"]["refund"] for r in found if r["out_trade_no"] == ref]


@dataclass
class Shop:
    client: httpx.AsyncClient
    container: Container
    wallet: Wallet
    adapter: LastMoment
    notifications: Notifications

    async def place(self) -> dict[str, Any]:
        body = order_body(currency="CNY", payment={"method": self.wallet.method})
        placed = await self.client.post("/v1/orders", json=body, headers=key())
        assert placed.status_code == 201, placed.text
        order: dict[str, Any] = placed.json()
        return order

    async def order(self, order_id: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self.client.get(f"/v1/orders/{order_id}")).json()
        return found

    async def deliver(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        kept = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        return await self.client.post(
            f"/v1/webhooks/{self.wallet.name}", content=body, headers=kept
        )

    async def expire(self) -> int:
        c = self.container
        later = time.time() + PAST_EXPIRY.total_seconds()
        return await expire_abandoned(
            c.storage,
            c.payments,
            c.recheck,
            after=EXPIRY,
            clock=lambda: _at(later),
        )


def _at(unix: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, UTC)


@pytest.fixture
def notifications() -> Iterator[tuple[Notifications, str]]:
    kept = Notifications()
    with serve_in_thread(kept.app()) as url:
        yield kept, f"{url}/notify"


@pytest.fixture(scope="session")
def wallet_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both wallets' sandbox keys, made once (RSA keys take a moment); each test copies them."""
    made = tmp_path_factory.mktemp("wallet-keys")
    load_keys(AlipayConfig(data_dir=str(made / "alipay")))
    load_identity(made / "wechatpay")
    return made


@pytest.fixture(params=["alipay", "wechatpay"])
def wallet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    notifications: tuple[Notifications, str],
    wallet_keys: Path,
) -> Iterator[Wallet]:
    _, notify_url = notifications
    data_dir = tmp_path / request.param
    shutil.copytree(wallet_keys / request.param, data_dir)
    if request.param == "alipay":
        with run_alipay(AlipayConfig(data_dir=str(data_dir))) as url:
            yield Alipay(url, data_dir, notify_url)
    else:
        with run_wechatpay(WechatConfig(data_dir)) as url:
            yield WechatPay(url, data_dir, notify_url)


@pytest.fixture
async def shop(
    sqlite_url: str, wallet: Wallet, notifications: tuple[Notifications, str]
) -> AsyncIterator[Shop]:
    settings = Settings(
        public_url="https://shop.example",
        action_expiry_minutes=EXPIRY.total_seconds() / 60,
        **wallet.settings,
    )
    plugin = registry.plugin(wallet.name)
    [account] = [a for a in plugin.accounts(settings) if a.primary]
    adapter = LastMoment(plugin.build(account, 5.0))
    providers = Providers([slot(settings, adapter, plugin.profile)])
    storage = await open_storage(sqlite_url)
    container = wire(settings, storage, providers)
    transport = httpx.ASGITransport(app=build_app(container=container))
    with ExitStack():
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            yield Shop(client, container, wallet, adapter, notifications[0])
    await adapter.aclose()
    await storage.close()


def _ref(order: dict[str, Any]) -> str:
    [attempt] = order["payment_attempts"]
    ref: str = attempt["provider_ref"]
    return ref


def _action_url(shop: Shop, order: dict[str, Any]) -> str:
    """The URL of the order's next action, of the kind its wallet's method asks for."""
    kind, field = shop.wallet.action
    assert order["next_action"]["type"] == kind, order["next_action"]
    url: str = order["next_action"][field]
    return url


def _states(order: dict[str, Any]) -> list[str]:
    return [entry["to_state"] for entry in order["timeline"]]


async def test_the_shopper_pays_outside_and_the_notification_settles_the_order(
    shop: Shop,
) -> None:
    order = await shop.place()
    assert order["state"] == "action_required"
    assert _action_url(shop, order)
    assert order["payment_attempts"][0]["provider"] == shop.wallet.name
    await shop.wallet.pays(_ref(order), _action_url(shop, order))
    body, headers = await shop.notifications.first()
    shop.wallet.accepted(await shop.deliver(body, headers))
    assert (await shop.order(order["id"]))["state"] == "paid"
    assert await shop.wallet.paid_fen(_ref(order)) == [TOTAL_FEN]


async def test_a_lost_notification_is_cured_by_asking_the_wallet(shop: Shop) -> None:
    order = await shop.place()
    await shop.wallet.pays(_ref(order), _action_url(shop, order))
    await shop.notifications.first()  # sent by the wallet, never delivered to orderguard
    assert (await shop.order(order["id"]))["state"] == "action_required"
    await shop.container.recheck.order(order["id"], cause=Cause.JANITOR)
    assert (await shop.order(order["id"]))["state"] == "paid"
    assert await shop.wallet.paid_fen(_ref(order)) == [TOTAL_FEN]


async def test_an_order_nobody_paid_is_closed_at_the_wallet_then_cancelled(shop: Shop) -> None:
    order = await shop.place()
    ref = _ref(order)
    await shop.wallet.after_expiry()
    assert await shop.expire() == 1
    found = await shop.order(order["id"])
    assert found["state"] == "cancelled"
    assert found["payment_attempts"][0]["state"] == "failed"
    assert await shop.wallet.closed(ref)
    try:
        await shop.wallet.opens(ref, _action_url(shop, order))
    except AssertionError:
        pass  # the page or the code is refused already
    paying = await shop.wallet.act(ref, "pay")
    assert paying.status_code >= 400
    assert await shop.wallet.paid_fen(ref) == []


async def test_a_payment_just_before_the_close_wins_over_it(shop: Shop) -> None:
    order = await shop.place()
    ref, url = _ref(order), _action_url(shop, order)
    await shop.wallet.opens(ref, url)

    async def pays_now(provider_ref: str) -> None:
        assert (await shop.wallet.act(provider_ref, "pay")).status_code == 200

    shop.adapter.before_close = pays_now
    assert await shop.expire() == 0
    found = await shop.order(order["id"])
    assert found["state"] == "paid"
    assert "cancelled" not in _states(found)
    assert await shop.wallet.paid_fen(ref) == [TOTAL_FEN]


async def test_a_forged_notification_is_refused_and_changes_nothing(shop: Shop) -> None:
    order = await shop.place()
    await shop.wallet.pays(_ref(order), _action_url(shop, order))
    body, headers = await shop.notifications.first()
    before = await shop.order(order["id"])
    forged = shop.wallet.forged(body)
    assert forged != body
    refused = await shop.deliver(forged, headers)
    assert refused.status_code == 400
    after = await shop.order(order["id"])
    assert (after["state"], after["timeline"]) == ("action_required", before["timeline"])
    shop.wallet.accepted(await shop.deliver(body, headers))  # the genuine one still settles
    assert (await shop.order(order["id"]))["state"] == "paid"
    assert await shop.wallet.paid_fen(_ref(order)) == [TOTAL_FEN]


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "notification-lost"])
async def test_a_shopper_who_pays_after_the_close_is_refunded_by_the_sweep_once(
    shop: Shop, notified: bool
) -> None:
    order = await shop.place()
    ref, url = _ref(order), _action_url(shop, order)
    await shop.wallet.close_will_lose(ref, url)
    assert await shop.expire() == 1
    assert (await shop.order(order["id"]))["state"] == "cancelled"
    await shop.wallet.pays_late(ref, url)
    assert await shop.wallet.paid_fen(ref) == [TOTAL_FEN]  # the wallet took the money
    if notified:  # a notification for a cancelled order: flagged, the order stays cancelled
        body, headers = await shop.notifications.first()
        shop.wallet.accepted(await shop.deliver(body, headers))
    assert await shop.wallet.refunded_fen(ref) == []

    if notified:
        report = await shop.container.sweeper.sweep_last(timedelta(hours=1))
        assert (report.trades_asked, report.duplicates_refunded, report.errors) == (1, 1, 0)
    else:  # the worker's sweep duty, as its schedule runs it
        worker = new_worker(shop.container)
        [sweep] = [duty for name, duty, _ in worker._duties(None) if name == "sweep"]
        await sweep()
    assert await shop.wallet.refunded_fen(ref) == [TOTAL_FEN]
    found = await shop.order(order["id"])
    assert found["state"] == "cancelled"
    assert found["timeline"][-1]["note"].startswith(f"charged after cancellation: {ref}")

    again = await shop.container.sweeper.sweep_last(timedelta(hours=1))
    assert (again.trades_asked, again.duplicates_refunded) == (0, 0)
    assert await shop.wallet.refunded_fen(ref) == [TOTAL_FEN]
    assert (await shop.order(order["id"]))["timeline"] == found["timeline"]


async def test_the_sweep_asks_nothing_more_of_a_closed_trade_nobody_paid(shop: Shop) -> None:
    order = await shop.place()
    await shop.wallet.after_expiry()
    assert await shop.expire() == 1
    report = await shop.container.sweeper.sweep_last(timedelta(hours=1))
    assert (report.trades_asked, report.duplicates_refunded, report.flagged) == (1, 0, 0)
    assert await shop.wallet.refunded_fen(_ref(order)) == []
    assert (await shop.order(order["id"]))["state"] == "cancelled"


async def test_with_refunds_off_a_payment_after_the_close_is_flagged_not_refunded(
    shop: Shop,
) -> None:
    order = await shop.place()
    ref, url = _ref(order), _action_url(shop, order)
    await shop.wallet.close_will_lose(ref, url)
    assert await shop.expire() == 1
    await shop.wallet.pays_late(ref, url)
    c = shop.container
    sweeper = Sweeper(c.storage, c.payments, auto_refund=False)
    report = await sweeper.sweep_last(timedelta(hours=1))
    assert (report.flagged, report.duplicates_refunded) == (1, 0)
    assert await shop.wallet.refunded_fen(ref) == []
    assert await shop.wallet.paid_fen(ref) == [TOTAL_FEN]
    found = await shop.order(order["id"])
    assert found["state"] == "cancelled"
    assert found["flag_reason"].startswith(f"charged after cancellation: {ref}")
