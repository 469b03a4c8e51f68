"""The demo's wallet shoppers: checkouts paid at Alipay's cashier or with WeChat Pay, over
real HTTP, against the wallet's sandbox as a shopper's phone or browser would use it.

A wallet has no test cards: what the shopper does happens at the wallet. Each checkout
places a CNY order with one of the wallet's methods (drawn from the seed), gets the order's
``next_action`` (the Alipay cashier URL, the WeChat Pay QR code or H5 page), and behaves:

* ``scan_and_pay`` opens the cashier (logs in, or scans the code / opens the H5 page),
  pays, and comes back to the shop (Alipay's return URL; the order page for WeChat Pay);
* ``abandon`` opens the cashier (or not even that) and walks away: the payment expires,
  orderguard closes it at the wallet and cancels the order;
* ``closed_tab`` pays at the wallet and never comes back: only the wallet's notification
  (or orderguard asking the wallet) can tell the shop;
* ``two_devices`` sends the same checkout from two devices at once (one Idempotency-Key),
  opens the payment on both and pays on both at the same moment: the wallet takes one;
* ``late_return`` walks away, comes back once the order is cancelled and tries to pay in
  the tab left open: the wallet must refuse (the payment was closed there).

The simulator keeps its own record (:class:`~orderguard.demo.shoppers.Checkout`): the cart
it sent, every answer, what the shopper was shown, and :class:`WalletPay` for every payment
the shopper tried at the wallet with what the wallet answered. Some shoppers whose order got
paid ask for their money back through the back office (a part, then the rest), as in the
card demo.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from orderguard.demo.shoppers import (
    BEING_FOUND_OUT,
    KEYLESS_SHARE,
    REFUND_SHARE,
    Cart,
    Checkout,
    RefundAsk,
    ShopperSimulator,
    order_body,
)

#: The wallets the demo can run, and the methods their shoppers pick from.
WALLET_METHODS: dict[str, tuple[str, ...]] = {
    "alipay": ("alipay_page", "alipay_wap"),
    "wechatpay": ("wechatpay_native", "wechatpay_h5"),
}
#: Behaviours and their weights.
BEHAVIOURS: dict[str, int] = {
    "scan_and_pay": 40,
    "abandon": 15,
    "closed_tab": 20,
    "two_devices": 15,
    "late_return": 10,
}
#: Behaviours whose order can end paid (the others are never refunded).
REFUNDABLE = frozenset({"scan_and_pay", "closed_tab", "two_devices"})
#: Seconds the back office waits for a refund answered ``pending`` to be made.
REFUND_WAIT_S = 15.0
#: The shopper's address on a wallet checkout (wallets charge CNY only).
_CN = {"line1": "人民路 1 号", "city": "上海", "postal_code": "200000", "country": "CN"}


@dataclass
class WalletPay:
    """One payment the shopper tried at the wallet, and what the wallet answered."""

    #: The wallet's trade (``out_trade_no``) the shopper paid, when the page named it.
    trade: str
    #: Which device tried it (0, or 1 for a second device).
    device: int = 0
    #: Whether the wallet said the payment went through (None: no answer came).
    accepted: bool | None = None
    #: The wallet's refusal (its code), when it refused.
    refusal: str = ""


@dataclass
class WalletRecord:
    """What a wallet shopper did at the wallet (beside :class:`Checkout`'s record)."""

    method: str = ""
    #: Every payment tried at the wallet, in order.
    pays: list[WalletPay] = field(default_factory=list)
    #: What the wallet said when the shopper got there after the payment had expired.
    closed: str = ""
    #: Every trade the shopper opened at the wallet (``out_trade_no``), paid or not.
    trades: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> list[WalletPay]:
        """The payments the wallet said went through."""
        return [p for p in self.pays if p.accepted]


class WalletShoppers(ShopperSimulator):
    """Wallet checkouts against ``base_url``, paying at the sandbox at ``wallet_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        wallet_url: str,
        seed: int,
        client_timeout_s: float,
        action_expiry_s: float,
        concurrency: int = 32,
        run_id: str | None = None,
        on_done: Callable[[Checkout], None] | None = None,
        refund_share: float = REFUND_SHARE,
    ) -> None:
        super().__init__(
            base_url,
            seed=seed,
            client_timeout_s=client_timeout_s,
            concurrency=concurrency,
            run_id=run_id,
            on_done=on_done,
            refund_share=refund_share,
        )
        if provider not in WALLET_METHODS:
            raise ValueError(f"no wallet shoppers for {provider!r}")
        self.provider = provider
        self.wallet_url = wallet_url.rstrip("/")
        self.action_expiry_s = action_expiry_s
        self._rng = random.Random(f"{seed}-{provider}")
        #: The wallet side of each checkout's record, by checkout reference.
        self.wallet: dict[str, WalletRecord] = {}

    def plan(self, count: int) -> list[Checkout]:
        """The checkouts, drawn from the seed: behaviour, method, refund, reference."""
        names, weights = zip(*BEHAVIOURS.items(), strict=True)
        refunds = random.Random(f"{self._seed}-{self.provider}-refunds")
        keyless = random.Random(f"{self._seed}-{self.provider}-references")
        plan = []
        for i in range(count):
            checkout = Checkout(
                i, self._rng.choices(names, weights)[0], f"DEMO-{self.run_id}-{i:05d}"
            )
            wanted = refunds.random() < self.refund_share
            checkout.refund_wanted = wanted and checkout.behaviour in REFUNDABLE
            checkout.with_reference = keyless.random() >= KEYLESS_SHARE
            method = self._rng.choice(WALLET_METHODS[self.provider])
            self.wallet[checkout.reference] = WalletRecord(method)
            plan.append(checkout)
        return plan

    def runner(self, behaviour: str) -> Callable[[httpx.AsyncClient, Checkout], Any]:
        """The coroutine that plays ``behaviour`` (a shopper who reaches the wallet after
        the payment expired there stops: see :class:`PaymentClosed`)."""
        play = {
            "scan_and_pay": self.scan_and_pay,
            "abandon": self.abandon,
            "closed_tab": self.closed_tab,
            "two_devices": self.two_devices,
            "late_return": self.late_return,
        }[behaviour]

        async def played(client: httpx.AsyncClient, checkout: Checkout) -> None:
            try:
                await play(client, checkout)
            except PaymentClosed as exc:
                self.wallet[checkout.reference].closed = str(exc)
                checkout.trouble = f"too late at the wallet: {exc}"

        return played

    def _wallet_body(self, checkout: Checkout) -> dict[str, Any]:
        """A CNY cart paid with the checkout's wallet method (its record kept)."""
        record = self.wallet[checkout.reference]
        body = order_body(
            checkout.index,
            checkout.reference,
            record.method,
            with_reference=checkout.with_reference,
        )
        body["currency"] = "CNY"
        body["customer"]["shipping_address"] = dict(_CN)
        body["customer"]["phone"] = "138 0013 8000"
        checkout.cart = Cart.of(body)
        return body

    async def _place(
        self, client: httpx.AsyncClient, checkout: Checkout, key: str
    ) -> dict[str, Any] | None:
        """Place the order and wait until it asks the shopper to pay: the order, or None
        (the reason noted) when it never did."""
        order = await self._submit(client, checkout, "/v1/orders", self._wallet_body(checkout), key)
        if order is None:
            return None
        return await self._payable(client, checkout, order)

    async def _payable(
        self, client: httpx.AsyncClient, checkout: Checkout, order: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Wait (as long as the payment could still be made) while the order's payment is
        being found out: the order once it asks the shopper to pay at the wallet, or None.
        An order still being found out when the shopper gives up told them nothing false
        (a trouble, noted); one that settled without asking them to pay, an error."""
        within = self.action_expiry_s + 5
        order = await self._until_settled(client, order, checkout=checkout, within_s=within)
        if order["state"] == "action_required" and action_url(order):
            return order
        checkout.trouble = f"no payment to make at the wallet ({order['state']})"
        if order["state"] not in BEING_FOUND_OUT:
            checkout.errors.append(checkout.trouble)
        return None

    # -- the wallet's pages ------------------------------------------------------------

    async def _open(
        self, client: httpx.AsyncClient, checkout: Checkout, url: str
    ) -> tuple[str, str]:
        """Open the payment at the wallet (the cashier and its login, the QR code scanned,
        the H5 page), noted in the record: the trade's ``out_trade_no`` and the shop's
        return URL ('' if none)."""
        trade, back = await self._opened(client, url)
        self.wallet[checkout.reference].trades.append(trade)
        return trade, back

    async def _opened(self, client: httpx.AsyncClient, url: str) -> tuple[str, str]:
        if self.provider == "alipay":
            query = parse_qs(urlsplit(url).query)
            trade = str(json.loads(query["biz_content"][0])["out_trade_no"])
            back = (query.get("return_url") or [""])[0]
            opened = await client.get(url, timeout=10)
            _expect(opened, 200, "the cashier")
            login = await client.post(
                f"{self.wallet_url}/cashier/{trade}/login", data={"return_url": back}, timeout=10
            )
            refusal = _between(login.text, "<p id=sub_code>", "</p>")
            if login.status_code == 400 and refusal in ALIPAY_CLOSED:
                raise PaymentClosed(refusal)
            _expect(login, 200, "the cashier's login")
            return trade, back
        if url.startswith("weixin://"):
            scanned = await client.post(
                f"{self.wallet_url}/sandbox/scan", json={"code_url": url}, timeout=10
            )
        else:
            scanned = await client.get(url, timeout=10)
        if scanned.status_code == 409:  # expired, or closed by the shop already
            raise PaymentClosed(_between(scanned.text, "<p>", "</p>"))
        _expect(scanned, 200, "the WeChat Pay code or page")
        if url.startswith("weixin://"):
            return str(scanned.json()["out_trade_no"]), ""
        form = scanned.text.split("/sandbox/shopper/", 1)[1]
        return form.split("/pay", 1)[0], ""

    async def _pay(
        self, client: httpx.AsyncClient, checkout: Checkout, trade: str, back: str, device: int
    ) -> WalletPay:
        """Pay ``trade`` at the wallet; what it answered goes in the record."""
        pay = WalletPay(trade, device)
        self.wallet[checkout.reference].pays.append(pay)
        if self.provider == "alipay":
            url = f"{self.wallet_url}/cashier/{trade}/pay"
            answer = await client.post(url, data={"return_url": back}, timeout=10)
            pay.accepted = answer.status_code in (200, 303)
            if not pay.accepted:
                pay.refusal = _between(answer.text, "<p id=sub_code>", "</p>")
            return pay
        answer = await client.post(f"{self.wallet_url}/sandbox/shopper/{trade}/pay", timeout=10)
        pay.accepted = answer.status_code == 200
        if not pay.accepted:
            pay.refusal = str(answer.json().get("code", answer.status_code))
        return pay

    async def _back_at_shop(
        self, client: httpx.AsyncClient, checkout: Checkout, order: dict[str, Any], back: str
    ) -> None:
        """Back at the shop: Alipay sends the browser to the return URL (which asks the
        wallet, then shows the order); WeChat Pay's shopper opens their order page."""
        if back:
            trade = self.wallet[checkout.reference].pays[-1].trade
            returned = await client.get(
                f"{back}{'&' if '?' in back else '?'}out_trade_no={trade}", timeout=10
            )
            if returned.status_code == 303:
                await self._watch_page(client, checkout, returned.headers["location"])
                return
            checkout.errors.append(f"the return URL answered {returned.status_code}")
            return
        await self._watch_page(client, checkout, str(order["status_url"]))

    async def _until_refund_made(self, client: httpx.AsyncClient, ask: RefundAsk) -> None:
        """A wallet may answer a refund ``pending`` (WeChat Pay's are ``PROCESSING`` first):
        the back office looks at the order until the refund shows made (or failed), for
        :data:`REFUND_WAIT_S` at most, before it asks the rest."""
        if ask.state != "pending" or not ask.refund_ids:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFUND_WAIT_S
        while ask.state == "pending" and loop.time() < deadline:
            await asyncio.sleep(0.5)
            order = await self._get(client, ask.order_id) or {}
            for refund in order.get("refunds") or []:
                if str(refund.get("id")) in ask.refund_ids:
                    ask.state = str(refund.get("state"))

    # -- behaviours --------------------------------------------------------------------

    async def scan_and_pay(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        order = await self._place(client, checkout, self._key(checkout))
        if order is None:
            return
        trade, back = await self._open(client, checkout, action_url(order))
        if (await self._pay(client, checkout, trade, back, 0)).accepted:
            await self._back_at_shop(client, checkout, order, back)

    async def abandon(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        order = await self._place(client, checkout, self._key(checkout))
        if order is not None and random.Random(checkout.reference).random() < 0.7:
            await self._open(client, checkout, action_url(order))  # then leaves

    async def closed_tab(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        order = await self._place(client, checkout, self._key(checkout))
        if order is None:
            return
        trade, _ = await self._open(client, checkout, action_url(order))
        await self._pay(client, checkout, trade, "", 0)  # and the tab is closed

    async def two_devices(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        key = self._key(checkout)
        body = self._wallet_body(checkout)
        await asyncio.gather(
            *(self._submit(client, checkout, "/v1/orders", body, key) for _ in range(2))
        )
        if checkout.order_id is None:
            return
        order = await self._get(client, checkout.order_id)
        order = order and await self._payable(client, checkout, order)
        if order is None:
            return
        url = action_url(order)
        opened = [await self._open(client, checkout, url) for _ in range(2)]
        await asyncio.gather(
            *(self._pay(client, checkout, t, b, d) for d, (t, b) in enumerate(opened))
        )
        if self.wallet[checkout.reference].accepted:
            await self._back_at_shop(client, checkout, order, opened[0][1])

    async def late_return(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        order = await self._place(client, checkout, self._key(checkout))
        if order is None:
            return
        trade, back = await self._open(client, checkout, action_url(order))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.action_expiry_s + 30
        while order["state"] not in ("cancelled", "paid", "payment_failed"):
            if loop.time() > deadline:
                checkout.trouble = f"the order was still {order['state']} on coming back"
                checkout.errors.append(checkout.trouble)
                return
            await asyncio.sleep(0.5)
            order = await self._get(client, order["id"]) or order
        checkout.shown.append(str(order["state"]))
        await self._pay(client, checkout, trade, back, 0)  # in the tab left open

    def _key(self, checkout: Checkout) -> str:
        """The checkout's Idempotency-Key (both devices of ``two_devices`` send it)."""
        return f"{self.run_id}-{self.provider}-{checkout.index}"


def action_url(order: dict[str, Any]) -> str:
    """Where the order's ``next_action`` sends the shopper: the page to open
    (``redirect_url``) or the text of the QR code to scan (``code_url``); '' if none."""
    action = order.get("next_action") or {}
    return str(action.get("redirect_url") or action.get("code_url") or "")


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise WalletPageError(f"{what} answered {response.status_code}: {response.text[:200]}")


def _between(text: str, start: str, end: str) -> str:
    if start not in text:
        return text[:80]
    return text.split(start, 1)[1].split(end, 1)[0]


class WalletPageError(Exception):
    """A wallet page the shopper needed would not open."""


class PaymentClosed(Exception):
    """The shopper reached the wallet after the payment expired (or the shop closed it):
    the wallet will not take it. An outcome, not an error: the order must not end paid."""


#: What Alipay's cashier answers a shopper who logs in after the payment expired.
ALIPAY_CLOSED = frozenset({"ACQ.TRADE_HAS_CLOSE", "ACQ.TRADE_STATUS_ERROR"})


#: Order states a shopper the wallet took money from may find their order in at the end.
CHARGED = frozenset({"paid", "refunded"})


def wallet_misled(
    checkout: Checkout,
    record: WalletRecord,
    finals: list[str],
    raced: frozenset[str] = frozenset(),
) -> list[str]:
    """What the shopper's steps at the wallet promise, against where their order ended (read
    from the database): the wallet took their money, so the order ends paid (or refunded
    by the back office); it never took any, so the order does not end paid. ``raced`` are
    the trades the sandbox paid as the shop closed them (its storm's ``close_race``: the
    shopper's payment landing at that moment), which count as paid by the shopper."""
    why = []
    opened = {p.trade for p in record.pays} | set(record.trades)
    paid = bool(record.accepted) or bool(opened & raced)
    for final in sorted(set(finals)):
        if paid and final not in CHARGED:
            why.append(f"{checkout.reference}: paid at the wallet, order ended {final}")
        if not paid and final in CHARGED:
            why.append(f"{checkout.reference}: never paid at the wallet, order ended {final}")
    if len(record.accepted) > 1 and len({p.trade for p in record.accepted}) == 1:
        why.append(f"{checkout.reference}: the wallet took one payment twice")
    if checkout.behaviour == "late_return" and paid:
        why.append(f"{checkout.reference}: paid in a tab left open after the order was cancelled")
    return why
