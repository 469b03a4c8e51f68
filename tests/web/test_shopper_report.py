"""A shopper's "report a problem" adds one reason beside the others, at most once an hour;
more reports are answered politely and change nothing (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from orderguard.catalog import translate
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.services.review import Review
from orderguard.storage.memory import InMemoryStorage
from tests.factories import new_order
from tests.web.shopfront import csrf_of, order_in, shop_and_box, status_path, token_of

MISMATCH = "amount_mismatch (report.csv:3): report 40.00 EUR, order 39.98 EUR"


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    async with shop_and_box(tmp_path, sqlite_url) as pair:
        yield pair


async def _flag_mismatch(shop, order_id: str) -> None:  # type: ignore[no-untyped-def]
    async with shop[0].container.storage() as uow:
        order = await uow.orders.get(order_id, for_update=True)
        assert order is not None
        order.flag(
            FlagReason.RECONCILIATION_AMOUNT_MISMATCH,
            MISMATCH,
            cause=Cause.RECONCILIATION,
            at=datetime.now(UTC),
        )
        await uow.orders.save(order)
        await uow.commit()


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_a_report_never_overwrites_a_mismatch_and_a_second_one_adds_nothing(
    shop,  # type: ignore[no-untyped-def]
    language: str,
) -> None:
    client: httpx.AsyncClient = shop[0].client
    order = await order_in(*shop, "paid")
    await _flag_mismatch(shop, str(order["id"]))
    page = await client.get(status_path(order), headers={"Accept-Language": language})
    form = {"token": token_of(order), "csrf": csrf_of(page.text), "lang": language}
    path = f"/orders/{order['id']}/report"

    first = await client.post(path, data={**form, "message": "where is my parcel?"})
    second = await client.post(path, data={**form, "message": "hello??"})

    assert first.status_code == 303
    assert second.status_code == 429
    assert str(escape(translate(language, "page.report_later"))) in second.text
    detail = await shop[0].order(str(order["id"]))
    flags = [(f["reason"], f["detail"], f["cleared_at"]) for f in detail["flags"]]
    assert flags == [
        ("reconciliation_amount_mismatch", MISMATCH, None),
        ("shopper_report", "where is my parcel?", None),
    ]
    assert detail["flag_reason"] == f"reconciliation: {MISMATCH}"  # the first open reason
    notes = " ".join(e["note"] for e in detail["timeline"])
    assert "hello??" not in notes


async def test_a_shopper_may_report_again_an_hour_after_support_answered() -> None:
    storage = InMemoryStorage()
    order = new_order()
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    review = Review(storage, clock=lambda: now[0])

    assert await review.report_problem(order.id, "where is my parcel?")
    now[0] += timedelta(minutes=10)
    await review.clear_flag(order.id, "sent today", actor="maria")
    now[0] += timedelta(minutes=30)
    refused = await review.report_problem(order.id, "still nothing")
    now[0] += timedelta(minutes=20)
    taken = await review.report_problem(order.id, "still nothing, an hour later")

    async with storage() as uow:
        stored = await uow.orders.get(order.id)
    assert stored is not None
    assert (refused, taken) == (False, True)
    assert [(f.detail, f.is_open) for f in stored.flags] == [
        ("where is my parcel?", False),
        ("still nothing, an hour later", True),
    ]
