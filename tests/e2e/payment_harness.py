"""orderguard wired to real sandbox providers over HTTP, for the payment end-to-end tests.

Each provider slot is built the way :func:`orderguard.bootstrap.slot` builds it (the Stripe
adapter behind our retry layer and a circuit breaker), only with a fast retry policy and a
short read timeout so the tests stay quick. The sandbox ledger (``GET /ledger``) is the
oracle for what was really charged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orderguard.api.server import reserve_port, running_server
from orderguard.bootstrap import Container, build_app, wire
from orderguard.config import Settings
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.resilience import RetryingProvider, RetryPolicy
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.server import run_sandbox
from orderguard.providers.stripe.sandbox.service import SandboxConfig
from orderguard.providers.stripe.sandbox.webhooks import signed_delivery
from orderguard.services.providers import Providers, ProviderSlot
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import order_body

VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"
THREE_DS = "pm_card_authenticationRequired"

#: Any ``sk_test_`` key is accepted by the sandbox.
API_KEY = "sk_test_x"
WEBHOOK_SECRET = "whsec_e2e_payments"
#: Retries as in production, only with millisecond waits. The deadline is far from the
#: fraction of a second four tries take, so the number of attempts, not the machine's load,
#: decides how often a call is tried.
FAST_RETRY = RetryPolicy(attempts=4, initial_s=0.01, max_wait_s=0.05, deadline_s=30.0)
#: The Stripe adapter's read timeout; a sandbox ``hold_s`` longer than this is a timeout (the
#: sandbox lets go as soon as the client hangs up). An answer takes milliseconds: a loaded
#: machine stays far inside this.
PROVIDER_TIMEOUT_S = 3.0


@dataclass
class Sandbox:
    """A running sandbox provider and its admin endpoints."""

    name: str
    url: str

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post(path, json=body)).raise_for_status()

    async def _get(self, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.get(path)
            response.raise_for_status()
            return response.json()

    async def set_faults(self, **profile: Any) -> None:
        """Replace the fault profile (no arguments: no faults); resets the ``limit`` count."""
        await self._post("/_sandbox/faults", profile)

    async def script(self, **answer: Any) -> None:
        """Make the next API call(s) answer this Stripe error (``/_sandbox/answers``)."""
        await self._post("/_sandbox/answers", answer)

    async def outage(self, seconds: float) -> None:
        """Answer every API call with 503 for ``seconds`` (0 ends an outage)."""
        await self._post("/_sandbox/outage", {"seconds": seconds})

    async def ledger(self) -> dict[str, list[dict[str, Any]]]:
        """``GET /ledger``: every intent, charge, refund and event the sandbox holds."""
        book: dict[str, list[dict[str, Any]]] = await self._get("/ledger")
        return book

    async def charges(self, order_id: str) -> list[dict[str, Any]]:
        """Succeeded charges whose metadata names ``order_id``."""
        return [
            c
            for c in (await self.ledger())["charges"]
            if c["status"] == "succeeded" and c["metadata"].get("order_id") == order_id
        ]

    async def intents(self, order_id: str) -> list[dict[str, Any]]:
        """Payment intents whose metadata names ``order_id``."""
        return [
            pi
            for pi in (await self.ledger())["payment_intents"]
            if pi["metadata"].get("order_id") == order_id
        ]

    async def succeeded_charge_count(self) -> int:
        """Succeeded charges for any order."""
        return sum(1 for c in (await self.ledger())["charges"] if c["status"] == "succeeded")

    async def fault_log(self) -> list[dict[str, Any]]:
        """Injected faults in the order they struck (``kind`` and ``detail``)."""
        log: list[dict[str, Any]] = (await self._get("/_sandbox/faults"))["log"]
        return log

    async def fault_kinds(self) -> list[str]:
        """Kinds of the injected faults, in order."""
        return [entry["kind"] for entry in await self.fault_log()]


class BreakerClock:
    """Monotonic seconds for the circuit breakers, which a test can move forward.

    Waiting out a real cool-down makes a test slow, and a short one flaky: under load the
    cool-down may pass between two steps that rely on the circuit still being open.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the breakers."""
        self.offset += seconds


@contextmanager
def sandbox(tmp_path: Path, name: str) -> Iterator[Sandbox]:
    """A fault-free sandbox on a free port, its ledger in ``tmp_path``."""
    config = SandboxConfig(db_path=str(tmp_path / f"{name}.db"), webhook_secret=WEBHOOK_SECRET)
    with run_sandbox(config) as url:
        yield Sandbox(name, url)


def provider_slot(
    settings: Settings,
    box: Sandbox,
    *,
    timeout_s: float = PROVIDER_TIMEOUT_S,
    policy: RetryPolicy = FAST_RETRY,
    clock: Callable[[], float] = time.monotonic,
) -> ProviderSlot:
    """Like :func:`orderguard.bootstrap.slot`, pointed at ``box`` with fast retries."""
    provider = StripeProvider(
        api_key=API_KEY,
        base_url=box.url,
        webhook_secret=WEBHOOK_SECRET,
        name=box.name,
        timeout_s=timeout_s,
    )
    breaker = CircuitBreaker(
        failure_threshold=settings.breaker_threshold,
        cool_down_s=settings.breaker_cool_down_s,
        clock=clock,
    )
    return ProviderSlot(RetryingProvider(provider, policy=policy), breaker)


@dataclass
class Shop:
    """orderguard on a real database and real sandbox providers, and a client to its API."""

    client: httpx.AsyncClient
    container: Container
    base_url: str
    #: The clock every provider's circuit breaker reads.
    breaker_clock: BreakerClock

    def slot(self, name: str) -> ProviderSlot:
        """The provider slot named ``name``."""
        return self.container.payments.providers.named(name)

    async def place(
        self,
        method: str | None = VISA,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``POST /v1/orders``; a fresh body and key unless given."""
        if body is None:
            body = order_body()
            if method:
                body["payment"] = {"method": method}
        headers = headers or {"Idempotency-Key": str(uuid.uuid4())}
        return await self.client.post("/v1/orders", json=body, headers=headers)

    async def placed(self, method: str | None = VISA) -> Placed:
        """Place a fresh order, expecting 201; keeps what a client retry needs."""
        body = order_body()
        if method:
            body["payment"] = {"method": method}
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        response = await self.place(body=body, headers=headers)
        assert response.status_code == 201, response.text
        return Placed(body, headers, response.json())

    async def order(self, order_id: str) -> dict[str, Any]:
        """``GET /v1/orders/{id}``: the order with its timeline."""
        response = await self.client.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        return detail

    async def recheck(self, order_id: str) -> dict[str, Any]:
        """``POST /v1/orders/{id}/recheck``."""
        response = await self.client.post(f"/v1/orders/{order_id}/recheck", json={})
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        return detail

    async def pay_again(self, order_id: str, method: str) -> httpx.Response:
        """``POST /v1/orders/{id}/payments`` with a fresh key."""
        return await self.client.post(
            f"/v1/orders/{order_id}/payments",
            json={"payment": {"method": method}},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )

    async def order_ids(self) -> list[str]:
        """Every order's id (``GET /v1/orders``, one page is enough here)."""
        response = await self.client.get("/v1/orders", params={"limit": 200})
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["data"]]


@dataclass
class Placed:
    """An order placed through the API: the request (to retry it) and the first answer."""

    body: dict[str, Any]
    headers: dict[str, str]
    answer: dict[str, Any]

    @property
    def id(self) -> str:
        """The order's id."""
        order_id: str = self.answer["id"]
        return order_id


async def deliver(shop: Shop, box: Sandbox, event_type: str, obj: dict[str, Any]) -> None:
    """POST a Stripe-signed event about ``obj`` (a snapshot) to the shop's webhook inbox."""
    evt = objects.event(event_type, obj, created=int(obj["created"]))
    body, headers = signed_delivery(evt, WEBHOOK_SECRET, timestamp=int(time.time()))
    response = await shop.client.post(f"/v1/webhooks/{box.name}", content=body, headers=headers)
    assert response.status_code == 200, response.text


def states(detail: dict[str, Any]) -> list[tuple[str | None, str]]:
    """The state changes on an order's timeline, in order."""
    return [(e["from_state"], e["to_state"]) for e in transitions(detail)]


def transitions(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline entries that changed the order's state."""
    return [e for e in detail["timeline"] if e["kind"] == "state_changed"]


def notes(detail: dict[str, Any]) -> list[str]:
    """Every timeline note, in order."""
    return [e["note"] for e in detail["timeline"]]


async def assert_client_retry_changes_nothing(
    shop: Shop, placed: Placed, *sandboxes: Sandbox
) -> None:
    """Re-sending ``POST /v1/orders`` with the same key replays; no new order, no new charge."""
    orders_before = sorted(await shop.order_ids())
    charges_before = [await box.succeeded_charge_count() for box in sandboxes]
    intents_before = [len((await box.ledger())["payment_intents"]) for box in sandboxes]
    retry = await shop.place(body=placed.body, headers=placed.headers)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.json()["id"] == placed.id
    assert retry.json() == placed.answer  # the first answer, byte for byte
    assert sorted(await shop.order_ids()) == orders_before
    assert [await box.succeeded_charge_count() for box in sandboxes] == charges_before
    assert [len((await box.ledger())["payment_intents"]) for box in sandboxes] == intents_before


@asynccontextmanager
async def open_shop(
    database_url: str,
    sandboxes: list[Sandbox],
    *,
    over_http: bool = False,
    timeout_s: float = PROVIDER_TIMEOUT_S,
    **settings: Any,
) -> AsyncIterator[Shop]:
    """orderguard wired with one slot per sandbox (primary first) on ``database_url``.

    In-process (``httpx.ASGITransport``) by default; ``over_http`` serves it with uvicorn on a
    free port whose URL is ``Settings.public_url``, so redirects to the shop really arrive.
    """
    port = reserve_port() if over_http else None
    base_url = f"http://127.0.0.1:{port}" if over_http else LOCAL_URL
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": base_url,
        "payment_time_budget_s": 30.0,  # far past the retries: they decide, not the clock
        "breaker_threshold": 5,
        "breaker_cool_down_s": 30.0,
    }
    values.update(settings)
    config = Settings(**values)
    storage = await open_storage(database_url)
    clock = BreakerClock()
    slots = [provider_slot(config, box, timeout_s=timeout_s, clock=clock) for box in sandboxes]
    container = wire(config, storage, Providers(slots))
    app = build_app(container=container)
    try:
        if over_http:
            async with (
                running_server(app, port=port) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as client,
            ):
                assert url == base_url
                yield Shop(client, container, url, clock)
        else:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield Shop(client, container, base_url, clock)
    finally:
        await container.close()
