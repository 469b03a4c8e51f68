"""A webhook signed with a public string never pays an order (issue 15, development mode).

orderguard is wired exactly as ``serve`` wires it (:func:`orderguard.bootstrap.open_sql`)
and served over real HTTP, so the in-process sandbox posts its own webhooks to it. The
forger knows everything a stranger can know: the order, its payment intent, and the old
documented secret ``whsec_sandbox``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.api.server import reserve_port, running_server
from orderguard.bootstrap import Container, build_app, open_sql
from orderguard.config import Settings
from orderguard.providers.stripe.sandbox.server import run_sandbox
from orderguard.providers.stripe.sandbox.service import SandboxConfig
from orderguard.providers.stripe.signing import SIGNATURE_HEADER, signature_header
from tests.e2e.payment_harness import THREE_DS
from tests.factories import key, order_body

pytestmark = pytest.mark.timeout(90)

#: The webhook secret orderguard used to default to, printed in its README.
OLD_DEFAULT = "whsec_sandbox"
FORM = re.compile(r'<form method="post" action="([^"]+)">')


def forged_success(order: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """``payment_intent.succeeded`` for the order's attempt, signed with ``secret``."""
    attempt = order["payment_attempts"][-1]
    intent = {
        "object": "payment_intent",
        "id": attempt["provider_ref"],
        "status": "succeeded",
        "amount": order["amount_total"],
        "currency": order["currency"].lower(),
        "metadata": {"order_id": order["id"], "attempt_id": attempt["id"]},
    }
    event = {
        "id": f"evt_forged_{time.time_ns()}",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    body = json.dumps(event).encode()
    header = signature_header(body, secret, timestamp=int(time.time()))
    return body, {SIGNATURE_HEADER: header, "Content-Type": "application/json"}


@asynccontextmanager
async def serving(
    settings: Settings, port: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """orderguard wired from ``settings`` as ``serve`` does, on ``port``."""
    container = await open_sql(settings)
    try:
        async with (
            running_server(build_app(container=container), port=port) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield client, container
    finally:
        await container.close()


async def place_3ds(client: httpx.AsyncClient) -> dict[str, Any]:
    body = order_body(payment={"method": THREE_DS})
    response = await client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    assert order["state"] == "action_required"
    return order


async def state_after_processing(client: httpx.AsyncClient, order_id: str) -> str:
    await asyncio.sleep(0.3)  # a stored event is applied right after the answer
    response = await client.get(f"/v1/orders/{order_id}")
    state: str = response.json()["state"]
    return state


@pytest.fixture
def port() -> int:
    return reserve_port()


@pytest.fixture
async def development(
    database_url: str, tmp_path: Path, port: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """orderguard with nothing configured: development mode, the in-process sandbox."""
    settings = Settings(
        database_url=database_url,
        public_url=f"http://127.0.0.1:{port}",
        sandbox_db=str(tmp_path / "sandbox.db"),
    )
    async with serving(settings, port) as wired:
        yield wired


@pytest.fixture
def stripe_account(tmp_path: Path) -> Iterator[str]:
    """A Stripe-compatible account (the sandbox) whose webhook secret orderguard was not told."""
    config = SandboxConfig(db_path=str(tmp_path / "account.db"), webhook_secret="whsec_unknown")
    with run_sandbox(config) as url:
        yield url


async def forge(
    client: httpx.AsyncClient, route: str, secret: str = OLD_DEFAULT
) -> tuple[dict[str, Any], httpx.Response]:
    """A 3-D Secure order awaiting the shopper, and the answer to a forged success for it."""
    order = await place_3ds(client)
    body, headers = forged_success(order, secret)
    return order, await client.post(route, content=body, headers=headers)


async def test_a_forged_success_signed_with_the_old_default_never_pays_a_sandbox_order(
    development: tuple[httpx.AsyncClient, Container],
) -> None:
    client, container = development
    order, refused = await forge(client, "/v1/webhooks/sandbox")
    assert order["livemode"] is False  # the sandbox's orders are test mode
    assert refused.status_code == 400, refused.text
    assert refused.json()["type"].endswith("invalid-webhook-signature")
    assert await state_after_processing(client, order["id"]) == "action_required"
    assert container.inbox.rejected == 1


async def test_the_stripe_route_does_not_exist_while_only_the_sandbox_takes_payments(
    development: tuple[httpx.AsyncClient, Container],
) -> None:
    client, _ = development
    order, response = await forge(client, "/v1/webhooks/stripe")
    assert response.status_code == 404, response.text
    assert await state_after_processing(client, order["id"]) == "action_required"


async def test_the_sandboxs_own_webhook_still_pays_its_order(
    development: tuple[httpx.AsyncClient, Container],
) -> None:
    client, _ = development
    order = await place_3ds(client)
    redirect = order["next_action"]["redirect_url"]
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(redirect)
        [approve] = [a for a in FORM.findall(page.text) if a.endswith("/approve")]
        base = redirect.split("/", 3)[:3]
        pressed = await browser.post("/".join(base) + approve)
    assert pressed.status_code == 303  # the shopper never comes back: only the webhook tells
    for _ in range(200):
        detail = (await client.get(f"/v1/orders/{order['id']}")).json()
        if detail["state"] == "paid":
            break
        await asyncio.sleep(0.05)
    assert detail["state"] == "paid"
    # notes carry the state too (a late action_required event is noted on a paid order)
    [paid] = [
        e for e in detail["timeline"] if e["kind"] == "state_changed" and e["to_state"] == "paid"
    ]
    assert paid["cause"] == "webhook"


async def test_a_stripe_account_without_a_webhook_secret_refuses_a_forged_success(
    database_url: str, tmp_path: Path, port: int, stripe_account: str
) -> None:
    settings = Settings(
        database_url=database_url,
        public_url=f"http://127.0.0.1:{port}",
        stripe_api_key="sk_test_forgery",
        stripe_base_url=stripe_account,
    )
    async with serving(settings, port) as (client, container):
        order = await place_3ds(client)
        for secret in (OLD_DEFAULT, "whsec_unknown", ""):
            body, headers = forged_success(order, secret)
            refused = await client.post("/v1/webhooks/stripe", content=body, headers=headers)
            assert refused.status_code == 400, refused.text
        assert await state_after_processing(client, order["id"]) == "action_required"
        assert container.inbox.rejected == 3
        async with container.storage() as uow:
            assert await uow.webhooks.recent(limit=10) == []  # nothing was even stored
