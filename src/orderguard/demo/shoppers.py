"""The shopper simulator: checkouts over real HTTP, the way shoppers and networks behave.

Each checkout draws a behaviour from a seeded random stream:

* ``card`` pays with a card that is charged; its client gives up sooner than the provider
  may take, and retries with the same ``Idempotency-Key`` until it gets an answer;
* ``double_click`` submits the same checkout twice at once (same key);
* ``declined_then_paid`` is declined, then pays again with another card;
* ``3ds_approved``, ``3ds_refused``, ``3ds_abandoned`` meet a 3-D Secure challenge and
  approve it, refuse it, or walk away;
* ``closed_tab`` sends the checkout and closes the tab before the answer, never to return.

The simulator remembers what every checkout was told, so the report can check that no
acknowledged order was lost and that one checkout never became two orders.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from orderguard.providers.testcards import DECLINED, NEEDS_AUTHENTICATION, SUCCEEDS

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
#: Tries a patient shopper's browser makes before giving up on one request.
MAX_TRIES = 12
_CARTS = [
    ("EUR", "PT", "Lisboa", "1100-048", "Rua Augusta 1", "+351 912 345 678"),
    ("EUR", "DE", "Berlin", "10117", "Unter den Linden 1", "+49 30 901820"),
    ("JPY", "JP", "Tokyo", "100-0001", "1-1 Chiyoda", "090-1234-5678"),
    ("CNY", "CN", "上海", "200000", "人民路 1 号", "138 0013 8000"),
    ("KWD", "KW", "Kuwait City", "13001", "Gulf Road 5", "+965 5000 0000"),
]


@dataclass
class Checkout:
    """What one simulated shopper did and was told."""

    index: int
    behaviour: str
    reference: str
    #: Order ids the service acknowledged (201) for this checkout: exactly one is right.
    acknowledged: set[str] = field(default_factory=set)
    #: HTTP requests that were answered with the same order after a retry.
    replays: int = 0
    retries: int = 0
    gave_up: bool = False
    #: Why it gave up, or what went wrong on the client's side.
    trouble: str = ""

    @property
    def order_id(self) -> str | None:
        return next(iter(sorted(self.acknowledged)), None)


@dataclass
class ShopperStats:
    """Counters the report shows about the shoppers' side."""

    checkouts: list[Checkout] = field(default_factory=list)
    client_troubles: Counter[str] = field(default_factory=Counter)

    @property
    def behaviours(self) -> Counter[str]:
        return Counter(c.behaviour for c in self.checkouts)


def order_body(index: int, reference: str, method: str) -> dict[str, Any]:
    """A checkout's ``POST /v1/orders`` body."""
    currency, country, city, postal, line1, phone = _CARTS[index % len(_CARTS)]
    step = 10 if currency == "KWD" else 1  # Stripe charges 3-decimal amounts ending in 0
    return {
        "merchant_reference": reference,
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
            "email": f"shopper{index}@example.com",
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
    ) -> None:
        self.base_url = base_url
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
        return [
            Checkout(i, self._rng.choices(names, weights)[0], f"DEMO-{self.run_id}-{i:05d}")
            for i in range(count)
        ]

    async def run(self, count: int) -> ShopperStats:
        checkouts = self.plan(count)
        self.stats.checkouts = checkouts
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency * 2 + 8)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits) as client:

            async def one(checkout: Checkout) -> None:
                async with gate:
                    try:
                        await _RUNNERS[checkout.behaviour](self, client, checkout)
                    except Exception as exc:  # a simulator bug must not hide the others
                        checkout.trouble = f"simulator error: {type(exc).__name__}: {exc}"
                        self.stats.client_troubles["simulator_error"] += 1
                if self._on_done:
                    self._on_done(checkout)

            await asyncio.gather(*(one(c) for c in checkouts))
        return self.stats

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
        """POST until answered (retrying with the same key); the order, or None."""
        rng = random.Random(f"{self.run_id}-{checkout.index}-{path}")
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
                self.stats.client_troubles["client_timeout"] += 1
                continue
            except httpx.TransportError as exc:
                self.stats.client_troubles[f"transport:{type(exc).__name__}"] += 1
                continue
            if response.status_code in (200, 201):
                order: dict[str, Any] = response.json()
                if response.status_code == 201:
                    checkout.acknowledged.add(order["id"])
                if response.headers.get("Idempotent-Replayed") == "true" and attempt:
                    checkout.replays += 1
                return order
            self.stats.client_troubles[f"http_{response.status_code}"] += 1
            if response.status_code < 500 and response.status_code not in (409, 429):
                checkout.trouble = f"refused with {response.status_code}: {response.text[:200]}"
                return None
        checkout.gave_up = True
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
        self, client: httpx.AsyncClient, order: dict[str, Any], *, within_s: float = 30.0
    ) -> dict[str, Any]:
        """Poll the order while its payment is still being found out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while order["state"] in {"received", "payment_pending", "payment_unknown"}:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
            order = await self._get(client, order["id"]) or order
        return order

    # -- behaviours -------------------------------------------------------------------

    async def card(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = order_body(checkout.index, checkout.reference, SUCCEEDS)
        await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))

    async def double_click(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = order_body(checkout.index, checkout.reference, SUCCEEDS)
        key = str(uuid.uuid4())
        await asyncio.gather(
            self._submit(client, checkout, "/v1/orders", body, key),
            self._submit(client, checkout, "/v1/orders", body, key),
        )

    async def declined_then_paid(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        body = order_body(checkout.index, checkout.reference, DECLINED)
        order = await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))
        if order is None:
            return
        order = await self._until_settled(client, order)
        if order["state"] != "payment_failed":
            checkout.trouble = f"declined card left the order {order['state']}"
            return
        again = {"payment": {"method": SUCCEEDS}}
        path = f"/v1/orders/{order['id']}/payments"
        await self._submit(client, checkout, path, again, str(uuid.uuid4()))

    async def _three_d_secure(
        self, client: httpx.AsyncClient, checkout: Checkout, choice: str | None
    ) -> None:
        body = order_body(checkout.index, checkout.reference, NEEDS_AUTHENTICATION)
        order = await self._submit(client, checkout, "/v1/orders", body, str(uuid.uuid4()))
        if order is None:
            return
        order = await self._until_settled(client, order)
        action = order.get("next_action") or {}
        if order["state"] != "action_required" or not action.get("redirect_url"):
            checkout.trouble = f"no challenge to answer ({order['state']})"
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
                    if returned.status_code in (303, 200):
                        return
                elif answer.status_code == 409:
                    return  # too late: the order was already cancelled
            except httpx.TransportError:
                self.stats.client_troubles["3ds_transport"] += 1
            await asyncio.sleep(0.5)
        checkout.trouble = "could not get through the challenge"

    async def three_ds_approved(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, "approve")

    async def three_ds_refused(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, "refuse")

    async def three_ds_abandoned(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        await self._three_d_secure(client, checkout, None)

    async def closed_tab(self, client: httpx.AsyncClient, checkout: Checkout) -> None:
        """Submit once and leave before the answer (or just after it)."""
        body = order_body(checkout.index, checkout.reference, SUCCEEDS)
        leave_after = random.Random(checkout.reference).uniform(0.02, 1.0)
        await self._submit(
            client, checkout, "/v1/orders", body, str(uuid.uuid4()), timeout=leave_after, tries=1
        )
        checkout.gave_up = False  # leaving was the plan, not a failure


_RUNNERS: dict[str, Callable[[ShopperSimulator, httpx.AsyncClient, Checkout], Any]] = {
    "card": ShopperSimulator.card,
    "double_click": ShopperSimulator.double_click,
    "declined_then_paid": ShopperSimulator.declined_then_paid,
    "3ds_approved": ShopperSimulator.three_ds_approved,
    "3ds_refused": ShopperSimulator.three_ds_refused,
    "3ds_abandoned": ShopperSimulator.three_ds_abandoned,
    "closed_tab": ShopperSimulator.closed_tab,
}
