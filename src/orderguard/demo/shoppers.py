"""The shopper simulator: checkouts over real HTTP, the way shoppers and networks behave.

Each checkout draws a behaviour from a seeded random stream:

* ``card`` pays with a card that is charged; its client gives up sooner than the provider
  may take, and retries with the same ``Idempotency-Key`` until it gets an answer;
* ``double_click`` submits the same checkout twice at once (same key);
* ``declined_then_paid`` is declined, then pays again once with another card (its browser
  retries that one request with the same key, through an outage orderguard announces);
* ``3ds_approved``, ``3ds_refused``, ``3ds_abandoned`` meet a 3-D Secure challenge and
  approve it, refuse it, or walk away;
* ``closed_tab`` sends the checkout and closes the tab before the answer, never to return.

Some shoppers whose order got paid then ask for their money back, the way a shop's back
office would do it through the API (``POST /v1/orders/{id}/refunds``): first a part, then the
rest, each request with its own ``Idempotency-Key``, and sometimes one request sent twice with
the same key (which must not refund twice). Which checkouts do so is drawn from the seed too
(:data:`REFUND_SHARE` of those that can end paid), from a stream of its own so the mix of
behaviours of a seed stays what it was.

A share of the checkouts (:data:`KEYLESS_SHARE`, from a stream of its own too) is sent
without a merchant reference, so only the ``Idempotency-Key`` makes such a checkout one order;
its shopper's email names the checkout instead (:func:`checkout_email`), so the audit can
count its orders in the database. Every ``409`` and every give-up is noted with its cause
(:attr:`Checkout.refusals`), for the report to explain.

The simulator remembers what every checkout was told, so the report can check that no
acknowledged order was lost and that one checkout never became two orders; and every refund
it asked for (amount, key, what it was answered), so the ledger can be held against it.

The simulator keeps its own record of every checkout, written from what it sent and saw and
never from the service's bookkeeping: the cart it sent (:class:`Cart`: lines, its own total,
currency, merchant reference or none, and a customer email that is the checkout's alone, so
the checkout can be found in the provider's charges and in the database without trusting
order ids orderguard wrote), every request with its Idempotency-Key and every answer
(:class:`Exchange`), each state the shopper was shown, the errors nothing explains, and every
refund the back office asked for (amount, key, what it was answered). The audit holds the
provider's ledger against this record first, then the database.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx

from orderguard.providers import registry

#: Behaviours and their weights.
BEHAVIOURS: dict[str, int] = {
    "card": 50,
    "double_click": 10,
    "declined_then_paid": 10,
    "3ds_approved": 8,
    "3ds_refused": 5,
    "3ds_abandoned": 5,
    "closed_tab": 12,
}
#: The sandbox's test payment methods the shoppers pay with: a card that pays, one that is
#: declined, one that needs 3-D Secure.
SUCCEEDS = registry.test_kit().succeeds
DECLINED = registry.test_kit().declined
NEEDS_AUTHENTICATION = registry.test_kit().needs_authentication
#: Order states in which the payment's outcome is still being found out.
BEING_FOUND_OUT = frozenset({"received", "payment_pending", "payment_unknown"})
#: Order states in which the shopper has paid.
PAID_STATES = frozenset({"paid", "refunded"})
#: Tries a patient shopper's browser makes before giving up on one request.
MAX_TRIES = 12
#: The outages orderguard announces with ``503`` and ``Retry-After`` (their problem types):
#: its database or every provider out of reach for now. A ``503`` of these is an answer the
#: shopper can act on (wait and retry); any other ``5xx`` is an error nothing explains.
OUTAGES = frozenset({"storage-unavailable", "provider-unavailable"})
#: Share of the checkouts sent without a merchant reference (the key alone makes one order).
KEYLESS_SHARE = 0.25
#: Share of the checkouts that can end paid whose order the back office then refunds.
REFUND_SHARE = 0.08
#: Behaviours whose order can end paid (the others are never refunded).
REFUNDABLE_BEHAVIOURS = frozenset({"card", "double_click", "declined_then_paid", "3ds_approved"})
#: Share of refund requests the back office sends twice with the same key.
REFUND_REPEAT_SHARE = 0.5
#: Seconds the back office waits for a refund's answer (it calls the provider).
BACK_OFFICE_TIMEOUT_S = 10.0
#: Seconds the back office waits for an order to be paid before it gives up refunding it.
PAID_WITHIN_S = 45.0
_CARTS = [
    ("EUR", "PT", "Lisboa", "1100-048", "Rua Augusta 1", "+351 912 345 678"),
    ("EUR", "DE", "Berlin", "10117", "Unter den Linden 1", "+49 30 901820"),
    ("JPY", "JP", "Tokyo", "100-0001", "1-1 Chiyoda", "090-1234-5678"),
    ("CNY", "CN", "上海", "200000", "人民路 1 号", "138 0013 8000"),
    ("KWD", "KW", "Kuwait City", "13001", "Gulf Road 5", "+965 5000 0000"),
]


@dataclass(frozen=True)
class Cart:
    """The cart a checkout sent, as the simulator reckons it (never as the service does)."""

    #: (sku, name, quantity, unit amount in minor units) per line, as sent.
    lines: tuple[tuple[str, str, int, int], ...]
    currency: str
    #: The ``merchant_reference`` sent, or None when the checkout sent none.
    reference: str | None
    #: The customer email sent: the checkout's own (see :func:`checkout_email`).
    email: str

    @property
    def amount(self) -> int:
        """The total in ISO minor units: the sum of the lines sent."""
        return sum(quantity * unit for _, _, quantity, unit in self.lines)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Cart:
        """The cart of a ``POST /v1/orders`` body."""
        lines = tuple(
            (str(i["sku"]), str(i["name"]), int(i["quantity"]), int(i["unit_amount"]))
            for i in body["items"]
        )
        reference = body.get("merchant_reference")
        email = str(body["customer"]["email"])
        return cls(lines, str(body["currency"]), reference or None, email)


@dataclass
class Exchange:
    """One request the shopper's browser sent (with all its retries) and what came back."""

    method: str
    path: str
    #: The ``Idempotency-Key`` it carried (None for a page or a GET).
    key: str | None
    #: Every HTTP status answered, in order (a timeout or a broken connection adds none).
    statuses: list[int] = field(default_factory=list)
    #: Tries that got no answer at all (client timeout, connection error).
    unanswered: int = 0
    #: The order id and state of the 2xx answer, when one came.
    order_id: str | None = None
    state: str | None = None


@dataclass
class Checkout:
    """What one simulated shopper did and was told."""

    index: int
    behaviour: str
    #: The checkout's own name (its merchant reference when it sends one).
    reference: str
    #: Order ids the service acknowledged (201) for this checkout: exactly one is right.
    acknowledged: set[str] = field(default_factory=set)
    #: HTTP requests that were answered with the same order after a retry.
    replays: int = 0
    retries: int = 0
    gave_up: bool = False
    #: Why it gave up, or what went wrong on the client's side.
    trouble: str = ""
    #: Whether its orders carry ``reference`` as merchant reference (else none at all).
    with_reference: bool = True
    #: The cause of every try that got no answer or a ``409``, in order (see ``_submit``).
    refusals: list[str] = field(default_factory=list)

    #: Whether the back office refunds the order once it is paid (part, then the rest).
    refund_wanted: bool = False
    #: The refunds the back office asked for, in order.
    refunds: list[RefundAsk] = field(default_factory=list)

    #: The cart it sent (None until it sent one).
    cart: Cart | None = None
    #: Every request it sent and what came back, in the order sent.
    exchanges: list[Exchange] = field(default_factory=list)
    #: Every order state the shopper was shown (an answer, their order page), in order.
    shown: list[str] = field(default_factory=list)
    #: What went wrong that nothing explains: a 5xx after retries, a request refused
    #: though it was well formed, a page that would not open, a step the flow could not
    #: take, a simulator error.
    errors: list[str] = field(default_factory=list)

    @property
    def order_id(self) -> str | None:
        return next(iter(sorted(self.acknowledged)), None)

    @property
    def email(self) -> str:
        """The customer email this checkout sends: its own, found again in the database
        and in the provider's charge."""
        return checkout_email(self.reference)

    @property
    def keys(self) -> list[str]:
        """Every Idempotency-Key it used, in order (a retry reuses its request's key)."""
        return [e.key for e in self.exchanges if e.key is not None]

    @property
    def told(self) -> str | None:
        """The last order state the shopper was shown, or None if never shown one."""
        return self.shown[-1] if self.shown else None


@dataclass
class RefundAsk:
    """One refund the back office asked for, and what it was told (its own record)."""

    order_id: str
    #: The client's ``Idempotency-Key``: one key is meant to be one refund.
    key: str
    amount: int
    currency: str
    #: The last 2xx answer's HTTP status (201 new, 200 repeated); None if none came.
    status: int | None = None
    #: The refund's id and state in the answers (one id per key, whatever the repeats).
    refund_ids: set[str] = field(default_factory=set)
    state: str | None = None
    #: Times the same request was sent again with the same key after an answer.
    repeats: int = 0
    #: Why it was refused, when it was.
    trouble: str = ""

    @property
    def confirmed(self) -> bool:
        """The service answered 2xx and said the provider made the refund."""
        return self.status is not None and self.state == "succeeded"

    @property
    def unanswered(self) -> bool:
        """No 2xx came (or one said the refund was still pending): it may be made or not."""
        return not self.trouble and (self.status is None or self.state == "pending")


@dataclass
class ShopperStats:
    """Counters the report shows about the shoppers' side."""

    checkouts: list[Checkout] = field(default_factory=list)
    client_troubles: Counter[str] = field(default_factory=Counter)

    @property
    def behaviours(self) -> Counter[str]:
        return Counter(c.behaviour for c in self.checkouts)

    @property
    def refund_asks(self) -> list[RefundAsk]:
        return [r for c in self.checkouts for r in c.refunds]


def checkout_email(reference: str) -> str:
    """The customer email of the checkout named ``reference``: the name in lower case (the
    run's prefix included), so the run's orders are found by it even without a merchant
    reference, and no two checkouts share one."""
    return f"{reference.lower()}@example.com"


def cart_total(index: int) -> tuple[int, str]:
    """The simulator's own reckoning of checkout ``index``'s total and currency (from the
    cart it sends, not from anything the service answers)."""
    body = order_body(index, "", SUCCEEDS)
    total = sum(item["quantity"] * item["unit_amount"] for item in body["items"])
    return total, str(body["currency"])


def partial_amount(total: int) -> int:
    """The first, partial refund of an order of ``total``: about a third, in tens of minor
    units (every currency's provider takes those), at least 10 and less than ``total``."""
    return min(total - 1, max(10, total // 3 // 10 * 10))


def order_body(
    index: int, reference: str, method: str, *, with_reference: bool = True
) -> dict[str, Any]:
    """A checkout's ``POST /v1/orders`` body (``reference`` sent as merchant reference only
    ``with_reference``; it names the checkout in the shopper's email either way)."""
    currency, country, city, postal, line1, phone = _CARTS[index % len(_CARTS)]
    step = registry.test_kit().amount_step(currency)  # KWD: 3-decimal amounts ending in 0
    return {
        "merchant_reference": reference if with_reference else None,
        "currency": currency,
        "items": [
            {
                "sku": "TEE-M",
                "name": "T-shirt",
                "quantity": 1 + index % 3,
                "unit_amount": 1999 // step * step,
            },
            {"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": 850 + step * (index % 7)},
        ],
        "customer": {
            "email": checkout_email(reference) if reference else f"shopper{index}@example.com",
            "name": f"Shopper {index}",
            "phone": phone,
            "shipping_address": {
                "line1": line1,
                "city": city,
                "postal_code": postal,
                "country": country,
            },
        },
        "payment": {"method": method},
    }


class ShopperSimulator:
    """Runs ``count`` checkouts against ``base_url`` with ``concurrency`` shoppers at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        seed: int,
        client_timeout_s: float,
        concurrency: int = 32,
        run_id: str | None = None,
        on_done: Callable[[Checkout], None] | None = None,
        max_tries: int = MAX_TRIES,
        refund_share: float = REFUND_SHARE,
        api_key: str | None = None,
        paid_within_s: float = PAID_WITHIN_S,
    ) -> None:
        self.base_url = base_url
        #: Seconds the back office waits for an order to be paid before it refunds nothing
        #: (a run bounds it by its own wait for the orders to be resolved).
        self.paid_within_s = paid_within_s
        #: Sent as ``Authorization: Bearer`` (an API bound beyond loopback requires a key).
        self.api_key = api_key
        self.refund_share = refund_share
        self._seed = seed
        self.max_tries = max_tries
        self.client_timeout_s = client_timeout_s
        self.concurrency = concurrency
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.stats = ShopperStats()
        self._rng = random.Random(seed)
        self._on_done = on_done

    def plan(self, count: int) -> list[Checkout]:
        """The checkouts to run, drawn from the seed (so a seed replays the same mix)."""
        names, weights = zip(*BEHAVIOURS.items(), strict=True)
        plan = [
            Checkout(i, self._rng.choices(names, weights)[0], f"DEMO-{self.run_id}-{i:05d}")
            for i in range(count)
        ]
        refunds = random.Random(f"{self._seed}-refunds")  # its own stream: see the docstring
        keyless = random.Random(f"{self._seed}-references")
        for checkout in plan:
            wanted = refunds.random() < self.refund_share
            checkout.refund_wanted = wanted and checkout.behaviour in REFUNDABLE_BEHAVIOURS
            checkout.with_reference = keyless.random() >= KEYLESS_SHARE
        return plan

    async def run(self, count: int, *, placed: Callable[[], None] | None = None) -> ShopperStats:
        """Run the checkouts, then wait for the back office's refunds; ``placed`` is called
        when the last checkout is done (the refunds of paid orders may still be under way,
        so a caller can time the checkouts alone and wait for the orders meanwhile)."""
        checkouts = self.plan(count)
        self.stats.checkouts = checkouts
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency * 2 + 8)
        office: list[asyncio.Task[None]] = []
        auth = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, headers=auth) as client:

            async def one(checkout: Checkout) -> None:
                async with gate:
                    try:
                        await self.runner(checkout.behaviour)(client, checkout)
                    except Exception as exc:  # a simulator bug must not hide the others
                        checkout.trouble = f"simulator error: {type(exc).__name__}: {exc}"
                        checkout.errors.append(checkout.trouble)
                        self.stats.client_troubles["simulator_error"] += 1
                if checkout.refund_wanted and checkout.order_id:
                    # outside the gate: the back office is not a shopper
                    office.append(asyncio.create_task(refunds(checkout)))
                if self._on_done:
                    self._on_done(checkout)

            async def refunds(checkout: Checkout) -> None:
                try:
                    await self.back_office_refunds(client, checkout)
                except Exception as exc:
                    checkout.trouble = f"simulator error: {type(exc).__name__}: {exc}"
                    checkout.errors.append(checkout.trouble)
                    self.stats.client_troubles["simulator_error"] += 1

            await asyncio.gather(*(one(c) for c in checkouts))
            if placed:
                placed()
            await asyncio.gather(*office)
        return self.stats

    def runner(self, behaviour: str) -> Callable[[httpx.AsyncClient, Checkout], Any]:
        """The coroutine that plays ``behaviour``."""
        return partial(_RUNNERS[behaviour], self)

    # -- requests ---------------------------------------------------------------------

    async def _submit(
        self,
        client: httpx.AsyncClient,
        checkout: Checkout,
        path: str,
        body: dict[str, Any],
        key: str,
        *,
        timeout: float | None = None,
        tries: int | None = None,
    ) -> dict[str, Any] | None:
        """POST until answered (retrying with the same key); the order, or None. Every
        answer goes in the checkout's record; a 2xx answer's state is what the shopper is
        shown."""
        rng = random.Random(f"{self.run_id}-{checkout.index}-{path}")
        exchange = Exchange("POST", path, key)
        checkout.exchanges.append(exchange)
        for attempt in range(tries or self.max_tries):
            if attempt:
                checkout.retries += 1
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + rng.random()))
            try:
                response = await client.post(
                    path,
                    json=body,
                    headers={"Idempotency-Key": key},
                    timeout=timeout or self.client_timeout_s,
                )
            except httpx.TimeoutException:
                exchange.unanswered += 1
                self.stats.client_troubles["client_timeout"] += 1
                checkout.refusals.append("client_timeout")
                continue
            except httpx.TransportError as exc:
                exchange.unanswered += 1
                self.stats.client_troubles[f"transport:{type(exc).__name__}"] += 1
                checkout.refusals.append("transport")
                continue
            exchange.statuses.append(response.status_code)
            if response.status_code in (200, 201):
                order: dict[str, Any] = response.json()
                if response.status_code == 201:
                    checkout.acknowledged.add(order["id"])
                if response.headers.get("Idempotent-Replayed") == "true" and attempt:
                    checkout.replays += 1
                exchange.order_id, exchange.state = str(order["id"]), str(order["state"])
                checkout.shown.append(exchange.state)
                return order
            self.stats.client_troubles[f"http_{response.status_code}"] += 1
            checkout.refusals.append(_cause(response))
            if response.status_code < 500 and response.status_code not in (409, 429):
                checkout.trouble = f"refused with {response.status_code}: {response.text[:200]}"
                checkout.errors.append(f"POST {path} refused with {response.status_code}")
                return None
        checkout.gave_up = True
        if exchange.statuses and exchange.statuses[-1] >= 500 and not announced(checkout):
            checkout.errors.append(
                f"POST {path} still answered {exchange.statuses[-1]} after "
                f"{len(exchange.statuses) + exchange.unanswered} tries"
            )
        return None

    async def _get(self, client: httpx.AsyncClient, order_id: str) -> dict[str, Any] | None:
        for _ in range(self.max_tries):
            try:
                response = await client.get(f"/v1/orders/{order_id}", timeout=5)
            except httpx.TransportError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 200:
                order: dict[str, Any] = response.json()
                return order
            await asyncio.sleep(0.5)
        return None

    async def _until_settled(
        self,
        client: httpx.AsyncClient,
        order: dict[str, Any],
        *,
        within_s: float = 30.0,
        checkout: Checkout | None = None,
    ) -> dict[str, Any]:
        """Poll the order while its payment is still being found out (each state seen is
        shown to the shopper of ``checkout``, whose page refreshes meanwhile)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while order["state"] in BEING_FOUND_OUT:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
            order = await self._get(client, order["id"]) or order
            if checkout is not None and checkout.told != order["state"]:
                checkout.shown.append(str(order["state"]))
        return order

    async def _watch_page(
        self, client: httpx.AsyncClient, checkout: Checkout, page: str, *, within_s: float = 30.0
    ) -> None:
        """The shopper on their order page (``page``, where the shop sent them): it reloads
        while the outcome is being found out, as the page's own script does; each state it
        shows goes in the record. A page that answers with an error, and never with the
        order, is an error nothing explains (one that never answers at all told nothing)."""
        url = httpx.URL(page)
        status = url.copy_with(path=url.path.rstrip("/") + "/status")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        exchange = Exchange("GET", url.path, None)
        checkout.exchanges.append(exchange)
        while True:
            try:
                response = await client.get(str(status), timeout=10)
            except httpx.TransportError:
                exchange.unanswered += 1
                self.stats.client_troubles["page_transport"] += 1
                response = None
            if response is not None:
                exchange.statuses.append(response.status_code)
                if response.status_code == 200:
                    exchange.state = str(response.json()["state"])
                    if checkout.told != exchange.state:
                        checkout.shown.append(exchange.state)
                    if exchange.state not in BEING_FOUND_OUT | {"action_required"}:
                        return
                elif response.status_code < 500 and response.status_code != 429:
                    checkout.errors.append(
                        f"their order page answered {response.status_code} ({url.path})"
                    )
                    return
            if loop.time() > deadline:
                if exchange.state is None and exchange.statuses:  # (none: never answered)
                    checkout.errors.append(
                        f"their order page never showed the order (last answer "
                        f"{exchange.statuses[-1]}, {url.path})"
                    )
                return
            await asyncio.sleep(1.0)

    def _body(self, checkout: Checkout, method: str) -> dict[str, Any]:
        """The checkout's ``POST /v1/orders`` body, its cart kept in the record."""
        body = order_body(
            checkout.index, checkout.reference, method, with_reference=checkout.with_reference
        )
        checkout.cart = Cart.of(body)
        return body

    async def _ask_refund(
        self, client: httpx.AsyncClient, ask: RefundAsk, *, rng: random.Random
    ) -> None:
        """POST the refund until answered, retrying with the same key; note every answer."""
        path = f"/v1/orders/{ask.order_id}/refunds"
        body = {"amount": ask.amount, "reason": "customer returned the goods (demo)"}
        for attempt in range(self.max_tries):
            if attempt:
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + rng.random()))
            try:
                response = await client.post(
                    path,
                    json=body,
                    headers={"Idempotency-Key": ask.key},
                    timeout=BACK_OFFICE_TIMEOUT_S,
                )
            except httpx.TransportError as exc:
                self.stats.client_troubles[f"refund_transport:{type(exc).__name__}"] += 1
                continue
            if response.status_code in (200, 201):
                refund: dict[str, Any] = response.json()["refund"]
                ask.status = response.status_code
                ask.refund_ids.add(str(refund["id"]))
                ask.state = str(refund["state"])
                return
            self.stats.client_troubles[f"refund_http_{response.status_code}"] += 1
            if response.status_code < 500 and response.status_code not in (409, 429):
                ask.trouble = f"refused with {response.status_code}: {response.text[:200]}"
                return

    async def _until_refund_made(self, client: httpx.AsyncClient, ask: RefundAsk) -> None:
        """Wait for a refund answered ``pending`` to be made; the card back office does not
        (it asks the rest only of a refund made at once)."""

    async def back_office_refunds(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        """Once the order is paid, refund a part of it, then the rest (amounts from the
        simulator's own cart), each with a key of its own; some requests are sent again with
        the same key after their answer, as a back office that clicked twice would."""
        order_id = checkout.order_id
        assert order_id is not None
        order = await self._get(client, order_id)
        deadline = asyncio.get_running_loop().time() + self.paid_within_s
        while order is not None and order["state"] != "paid":
            if order["state"] in {"payment_failed", "cancelled", "refunded"}:
                return  # never paid (a checkout that did not end paid is not refunded)
            if asyncio.get_running_loop().time() > deadline:
                checkout.trouble = f"not paid within {self.paid_within_s:g} s: no refund asked"
                return
            await asyncio.sleep(0.5)
            order = await self._get(client, order_id) or order
        if order is None:
            return
        # the cart it sent (the simulator's own record), else its reckoning of that cart
        total, currency = (
            (checkout.cart.amount, checkout.cart.currency)
            if checkout.cart
            else cart_total(checkout.index)
        )
        rng = random.Random(f"{self.run_id}-{checkout.index}-refunds")
        first = partial_amount(total)
        for amount in (first, total - first):
            ask = RefundAsk(order_id, str(uuid.uuid4()), amount, currency)
            checkout.refunds.append(ask)
            await self._ask_refund(client, ask, rng=rng)
            if ask.status is not None and rng.random() < REFUND_REPEAT_SHARE:
                ask.repeats += 1
                await self._ask_refund(client, ask, rng=rng)
            await self._until_refund_made(client, ask)
            if ask.trouble or not ask.confirmed:
                return  # the rest is asked only once the part is made

    # -- behaviours -------------------------------------------------------------------

    async def card(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = self._body(checkout, SUCCEEDS)
        await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))

    async def double_click(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = self._body(checkout, SUCCEEDS)
        key = str(uuid.uuid4())
        await asyncio.gather(
            self._submit(client, checkout, "/v1/orders", body, key),
            self._submit(client, checkout, "/v1/orders", body, key),
        )

    async def declined_then_paid(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = self._body(checkout, DECLINED)
        order = await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))
        if order is None:
            return
        order = await self._until_settled(client, order, checkout=checkout)
        if order["state"] != "payment_failed":
            checkout.trouble = f"declined card left the order {order['state']}"
            if order["state"] in PAID_STATES:  # a declined card cannot be charged
                checkout.errors.append(checkout.trouble)
            return
        again = {"payment": {"method": SUCCEEDS}}
        path = f"/v1/orders/{order['id']}/payments"
        # once: a shopper told "failed" after paying again with a working card was misled
        await self._submit(client, checkout, path, again, str(uuid.uuid4()))

    async def _three_d_secure(
        self, client: httpx.AsyncClient, checkout: Checkout, choice: str | None
    ) -> None:
        body = self._body(checkout, NEEDS_AUTHENTICATION)
        order = await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))
        if order is None:
            return
        order = await self._until_settled(client, order, checkout=checkout)
        action = order.get("next_action") or {}
        if order["state"] != "action_required" or not action.get("redirect_url"):
            checkout.trouble = f"no challenge to answer ({order['state']})"
            # (cancelled: the challenge expired while the shop was out of reach, say)
            if order["state"] in PAID_STATES:  # charged though no one authenticated
                checkout.errors.append(checkout.trouble)
            return
        if choice is None:
            return  # walked away from the challenge
        challenge = action["redirect_url"]
        for _ in range(self.max_tries):
            try:
                answer = await client.post(f"{challenge}/{choice}", timeout=10)
                if answer.status_code == 303:
                    # back to the shop: the return URL asks the provider, then shows the order
                    back = answer.headers["location"]
                    returned = await client.get(back, timeout=10)
                    if returned.status_code == 303:
                        await self._watch_page(client, checkout, returned.headers["location"])
                        return
                elif answer.status_code == 409:
                    return  # too late: the order was already cancelled
            except httpx.TransportError:
                self.stats.client_troubles["3ds_transport"] += 1
            await asyncio.sleep(0.5)
        checkout.trouble = "could not get through the challenge"
        checkout.errors.append(f"{checkout.trouble} and back to the shop")

    async def three_ds_approved(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, "approve")

    async def three_ds_refused(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, "refuse")

    async def three_ds_abandoned(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, None)

    async def closed_tab(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        """Submit once and leave before the answer (or just after it)."""
        body = self._body(checkout, SUCCEEDS)
        leave_after = random.Random(checkout.reference).uniform(0.02, 1.0)
        await self._submit(
            client, checkout, "/v1/orders", body, str(uuid.uuid4()), timeout=leave_after, tries=1
        )
        checkout.gave_up = False  # leaving was the plan, not a failure


def _cause(response: httpx.Response) -> str:
    """A refusal's cause: ``409`` with its problem's type (``409 request-in-flight``); a
    ``503`` orderguard announced (a problem type of :data:`OUTAGES` and ``Retry-After``)
    with that type (``503 storage-unavailable``); else the status (``http_503``)."""
    if response.status_code not in (409, 503):
        return f"http_{response.status_code}"
    try:
        kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except (ValueError, AttributeError):
        kind = ""
    if response.status_code == 503:
        announced = kind in OUTAGES and "retry-after" in response.headers
        return f"503 {kind}" if announced else "http_503"
    return f"409 {kind or 'without a problem type'}"


def announced(checkout: Checkout) -> bool:
    """Whether the last answer ``checkout`` got before giving up was an outage orderguard
    announced (:data:`OUTAGES`)."""
    return bool(checkout.refusals) and checkout.refusals[-1].removeprefix("503 ") in OUTAGES


_RUNNERS: dict[str, Callable[[ShopperSimulator, httpx.AsyncClient, Checkout], Any]] = {
    "card": ShopperSimulator.card,
    "double_click": ShopperSimulator.double_click,
    "declined_then_paid": ShopperSimulator.declined_then_paid,
    "3ds_approved": ShopperSimulator.three_ds_approved,
    "3ds_refused": ShopperSimulator.three_ds_refused,
    "3ds_abandoned": ShopperSimulator.three_ds_abandoned,
    "closed_tab": ShopperSimulator.closed_tab,
}
