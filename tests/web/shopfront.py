"""orderguard with a real sandbox on a real database, and orders in every state, made the
way they happen in production (through the API and the sandbox), for the page tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from orderguard.domain.events import Cause
from orderguard.domain.states import OrderState
from orderguard.services.console_users import ConsoleUsers, SessionPolicy
from tests.e2e.payment_harness import (
    DECLINED,
    PROVIDER_TIMEOUT_S,
    THREE_DS,
    VISA,
    Sandbox,
    Shop,
    open_shop,
    sandbox,
)

#: Where the tests leave their screenshots (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Every order state, in the order a shopper might meet them.
ALL_STATES = [str(s) for s in OrderState]
#: The password every test user gets.
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def shop_and_box(
    tmp_path: Path, database_url: str, *, over_http: bool = False, **settings: Any
) -> AsyncIterator[tuple[Shop, Sandbox]]:
    """A shop wired to one fault-free sandbox (``settings`` override the defaults)."""
    with sandbox(tmp_path, "sandbox") as box:
        async with open_shop(database_url, [box], over_http=over_http, **settings) as shop:
            yield shop, box


async def order_in(shop: Shop, box: Sandbox, state: str) -> dict[str, object]:
    """A new order in ``state``, reached through the API and the sandbox."""
    if state == "received":
        return (await shop.placed(None)).answer
    if state == "payment_pending":
        return await _pending(shop)
    if state == "payment_unknown":
        await box.set_faults(timeout_after=1.0, hold_s=PROVIDER_TIMEOUT_S * 5, limit=1)
        answer = (await shop.placed(VISA)).answer
        await box.set_faults()
        return answer
    declined = {"action_required": THREE_DS, "payment_failed": DECLINED, "cancelled": DECLINED}
    method = declined.get(state, VISA)
    answer = (await shop.placed(method)).answer
    if state == "refunded":
        response = await shop.client.post(f"/v1/orders/{answer['id']}/refund", json={})
        assert response.status_code == 200, response.text
        answer = response.json()
    if state == "cancelled":
        response = await shop.client.post(f"/v1/orders/{answer['id']}/cancel", json={})
        assert response.status_code == 200, response.text
        answer = response.json()
    assert answer["state"] == state, answer
    return answer


async def _pending(shop: Shop) -> dict[str, object]:
    """An order whose payment attempt was created and not answered yet (as mid-charge)."""
    answer = (await shop.placed(None)).answer
    wiring = shop.container
    async with wiring.storage() as uow:
        order = await uow.orders.get(str(answer["id"]), for_update=True)
        assert order is not None
        wiring.payments.prepare(order, VISA, cause=Cause.API, at=datetime.now(UTC))
        await uow.orders.save(order)
        await uow.commit()
    return await shop.order(order.id)


def status_path(order: dict[str, object]) -> str:
    """The shopper's page of ``order``, relative to the shop."""
    url = str(order["status_url"])
    return url[url.index("/orders/") :]


def token_of(order: dict[str, object]) -> str:
    """The status token in ``order``'s status URL."""
    return str(order["status_url"]).split("token=", 1)[1]


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match[1]


async def add_user(shop: Shop, name: str, role: str) -> None:
    """A console user ``name`` with :data:`PASSWORD`."""
    await ConsoleUsers(shop.container.storage.console, SessionPolicy()).add(name, PASSWORD, role)


async def log_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    """Post the console's log-in form as a browser would (CSRF cookie first)."""
    form = await client.get("/console/login")
    token = csrf_of(form.text)
    return await client.post(
        "/console/login", data={"csrf": token, "name": name, "password": password}
    )
