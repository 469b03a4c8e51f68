"""The worker's relay duty: orders placed through the API (their language from
``Accept-Language`` or the ``locale`` field) are emailed by the worker's round."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import httpx
import pytest

from orderguard.bootstrap import build_app, new_worker, wire
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings, memory_providers
from tests.integration.test_payments_api import DECLINED, THREE_DS, VISA
from tests.outbox_kit import smtp_server


def subject(message: EmailMessage) -> str:
    """The subject, unfolded."""
    return " ".join(str(message["Subject"]).split())


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_the_worker_emails_each_shopper_in_their_language_with_their_links(
    request: pytest.FixtureRequest, backend: str
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    storage = await open_storage(url)
    with smtp_server() as box:
        container = wire(api_settings(smtp_url=box.url), storage, memory_providers())
        transport = httpx.ASGITransport(app=build_app(container=container))
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            placed = {}
            for name, method, headers, extra in (
                ("zh", VISA, {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}, {}),
                ("en", DECLINED, {"Accept-Language": "en-GB"}, {}),
                ("3ds", THREE_DS, {"Accept-Language": "zh-CN"}, {"locale": "en"}),
            ):
                body = {**order_body(**extra), "payment": {"method": method}}
                answer = await client.post("/v1/orders", json=body, headers={**key(), **headers})
                assert answer.status_code == 201, answer.text
                placed[name] = answer.json()
        await new_worker(container).round()
        await asyncio.sleep(0.2)
        messages = box.received()
    await storage.close()
    subjects = {
        name: [subject(m) for m in messages if order["id"] in subject(m)]
        for name, order in placed.items()
    }
    zh, en, three_ds = placed["zh"]["id"], placed["en"]["id"], placed["3ds"]["id"]
    assert subjects["zh"] == [f"我们已收到您的订单 {zh}", f"订单 {zh} 已付款"]
    assert subjects["en"] == [
        f"Your order {en} was received",
        f"The payment for order {en} did not go through",
    ]
    assert subjects["3ds"] == [
        f"Your order {three_ds} was received",
        f"Please confirm the payment for order {three_ds}",
    ]
    action = next(m for m in messages if subject(m).startswith("Please confirm"))
    redirect = placed["3ds"]["next_action"]["redirect_url"]
    assert redirect and redirect in text_of(action)
    for name, order in placed.items():
        mine = [m for m in messages if order["id"] in subject(m)]
        assert all(order["status_url"] in text_of(m) for m in mine), name


async def test_a_bad_smtp_url_stops_only_the_relay_with_a_clear_error(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await open_storage(sqlite_url)
    container = wire(api_settings(smtp_url="mail.example:25"), storage, memory_providers())
    worker = new_worker(container)
    await worker.round()
    await worker.round()
    await storage.close()
    errors = [r.getMessage() for r in caplog.records if r.name == "orderguard.outbox"]
    assert len(errors) == 1 and "SMTP URL must look like smtp://" in errors[0]
