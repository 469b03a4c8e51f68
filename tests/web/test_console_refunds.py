"""Partial refunds from the console: amount and reason, a confirmation, one refund per
confirmed form; the order page, and the shopper's page, say "partially refunded"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import add_user, csrf_of, log_in, order_in, shop_and_box, status_path

Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, database_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, database_url) as pair:
        await add_user(pair[0], "olga", "operator")
        await log_in(pair[0].client, "olga")
        yield pair


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, name
    return found[1]


async def test_a_partial_refund_is_confirmed_then_made_once(shop: Pair) -> None:
    client = shop[0].client
    order = await order_in(*shop, "paid")
    path = f"/console/orders/{order['id']}/refund"
    form = await client.get(path)
    assert 'id="refund-form"' in form.text and 'name="reason"' in form.text
    csrf = csrf_of(form.text)

    review = await client.post(path, data={"csrf": csrf, "amount": "1.50", "reason": "one sock"})

    assert review.status_code == 200
    assert "Refund 1.50 EUR to the shopper?" in review.text
    assert "Reason: one sock" in review.text
    assert (await shop[0].order(str(order["id"])))["refunds"] == []  # nothing before the yes
    confirmed = {
        "csrf": csrf,
        "confirm": "yes",
        "amount": hidden(review.text, "amount"),
        "reason": hidden(review.text, "reason"),
        "key": hidden(review.text, "key"),
    }
    done = await client.post(path, data=confirmed)
    twice = await client.post(path, data=confirmed)  # a double submit of the same form
    assert (done.status_code, twice.status_code) == (303, 303)
    detail = await shop[0].order(str(order["id"]))
    [made] = detail["refunds"]
    assert (made["amount"], made["reason"], made["requester"]) == (150, "one sock", "olga")
    assert (detail["state"], detail["partially_refunded"]) == ("paid", True)
    assert len((await shop[1].ledger())["refunds"]) == 1

    page = await client.get(f"/console/orders/{order['id']}")
    assert 'id="partially-refunded">partially refunded<' in page.text
    shopper = await client.get(status_path(order))
    assert "Partially refunded: 1.50 EUR was given back to you." in shopper.text
    chinese = await client.get(status_path(order) + "&lang=zh-CN")
    assert "部分退款：已向您退回 1.50 EUR。" in chinese.text  # noqa: RUF001


async def test_a_bad_amount_or_a_missing_reason_is_asked_again(shop: Pair) -> None:
    client = shop[0].client
    order = await order_in(*shop, "paid")
    path = f"/console/orders/{order['id']}/refund"
    csrf = csrf_of((await client.get(path)).text)
    answers = [
        await client.post(path, data={"csrf": csrf, "amount": amount, "reason": reason})
        for amount, reason in (("1.505", "x"), ("-1", "x"), ("0", "x"), ("2", ""), ("2", "\x07"))
    ]
    assert [a.status_code for a in answers] == [400] * 5
    assert "at most 2 decimals" in answers[0].text
    assert "Give a reason" in answers[3].text
    over = await client.post(
        path, data={"csrf": csrf, "confirm": "yes", "amount": "100000", "reason": "x"}
    )
    assert over.status_code == 409 and "left to refund" in over.text
    assert (await shop[0].order(str(order["id"])))["refunds"] == []
