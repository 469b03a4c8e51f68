"""The demo's checkouts without a merchant reference (the Idempotency-Key alone makes one
order), their orders counted per checkout, and the 409s and give-ups the report explains."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from orderguard.demo.audit import Snapshot, StoredOrder, build_report, check
from orderguard.demo.shoppers import Checkout, ShopperSimulator, ShopperStats, _cause, order_body

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _order(order_id: str, checkout: str, *, reference: str | None = None) -> StoredOrder:
    return StoredOrder(
        order_id, reference, "payment_failed", "EUR", 4848, None, T0, T0, checkout=checkout
    )


def _plan(seed: int) -> list[Checkout]:
    return ShopperSimulator("http://x", seed=seed, client_timeout_s=1, run_id="r1").plan(1000)


def test_about_a_quarter_of_the_checkouts_go_without_a_reference_drawn_from_the_seed() -> None:
    plan = _plan(42)
    keyless = [c.index for c in plan if not c.with_reference]
    assert 150 < len(keyless) < 350
    assert keyless == [c.index for c in _plan(42) if not c.with_reference]
    assert keyless != [c.index for c in _plan(43) if not c.with_reference]
    # every behaviour meets checkouts of both kinds
    assert {c.behaviour for c in plan if not c.with_reference} == {c.behaviour for c in plan}


def test_a_checkout_without_reference_is_named_by_its_shoppers_email() -> None:
    body = order_body(3, "DEMO-r1-00003", "pm_card_visa", with_reference=False)
    assert body["merchant_reference"] is None
    assert body["customer"]["email"] == "demo-r1-00003@example.com"
    kept = order_body(3, "DEMO-r1-00003", "pm_card_visa")
    assert kept["merchant_reference"] == "DEMO-r1-00003"
    assert kept["customer"]["email"] == "demo-r1-00003@example.com"


def test_two_orders_in_the_database_for_one_checkout_break_the_invariant() -> None:
    """The shopper was told one order (the other answer was lost to a timeout): the count
    in the database still finds the second one."""
    shoppers = ShopperStats(
        checkouts=[
            Checkout(0, "card", "DEMO-r1-00000", acknowledged={"ord_a"}, with_reference=False),
            Checkout(1, "card", "DEMO-r1-00001", acknowledged={"ord_c"}, with_reference=False),
        ]
    )
    orders = {
        "ord_a": _order("ord_a", "demo-r1-00000"),
        "ord_b": _order("ord_b", "demo-r1-00000"),
        "ord_c": _order("ord_c", "demo-r1-00001"),
    }
    broken = check(shoppers, Snapshot(orders, set(orders), Counter()), {})
    assert broken["checkouts_with_two_orders"] == ["DEMO-r1-00000"]
    del orders["ord_b"]
    assert (
        check(shoppers, Snapshot(orders, set(orders), Counter()), {})["checkouts_with_two_orders"]
        == []
    )


def test_a_checkout_told_two_orders_is_listed_once() -> None:
    shoppers = ShopperStats(
        checkouts=[Checkout(0, "double_click", "DEMO-r1-00000", acknowledged={"ord_a", "ord_b"})]
    )
    orders = {
        "ord_a": _order("ord_a", "demo-r1-00000"),
        "ord_b": _order("ord_b", "demo-r1-00000"),
    }
    broken = check(shoppers, Snapshot(orders, set(orders), Counter()), {})
    assert broken["checkouts_with_two_orders"] == ["DEMO-r1-00000"]


def _refused(*causes: str, gave_up: bool = False) -> ShopperStats:
    checkout = Checkout(0, "card", "DEMO-r1-00000", gave_up=gave_up, refusals=list(causes))
    return ShopperStats(checkouts=[checkout])


def test_refusals_the_storm_explains_break_nothing() -> None:
    shoppers = _refused(
        "client_timeout",
        "409 request-in-flight",
        "transport",
        "http_429",
        "503 storage-unavailable",
        "503 provider-unavailable",
    )
    assert (
        check(shoppers, Snapshot({}, set(), Counter()), {})["checkouts_refused_unexplained"] == []
    )


def test_a_409_for_a_taken_reference_or_a_server_error_is_unexplained() -> None:
    for cause in (
        "409 duplicate-merchant-reference",
        "http_500",
        "409 payment-not-allowed",
        "http_503",
    ):
        shoppers = _refused("client_timeout", cause, gave_up=True)
        broken = check(shoppers, Snapshot({}, set(), Counter()), {})
        assert broken["checkouts_refused_unexplained"] == ["DEMO-r1-00000"], cause


def test_the_report_counts_refusals_and_give_ups_by_cause() -> None:
    shoppers = _refused("client_timeout", "409 duplicate-merchant-reference", gave_up=True)
    shoppers.checkouts.append(Checkout(1, "card", "DEMO-r1-00001", with_reference=False))
    report = build_report(shoppers, Snapshot({}, set(), Counter()), {}, {}, seed=1, database="x")
    document = report.as_json()
    assert document["refusals"] == {"client_timeout": 1, "409 duplicate-merchant-reference": 1}
    assert document["gave_up_by_cause"] == {"409 duplicate-merchant-reference": 1}
    assert document["checkouts_without_reference"] == 1
    assert document["invariants"]["checkouts_refused_unexplained"] == 1
    assert report.ok is False


def test_a_409_is_told_apart_by_its_problem_type() -> None:
    busy = httpx.Response(409, json={"type": "/problems/request-in-flight", "status": 409})
    taken = httpx.Response(409, json={"type": "/problems/duplicate-merchant-reference"})
    assert _cause(busy) == "409 request-in-flight"
    assert _cause(taken) == "409 duplicate-merchant-reference"
    assert _cause(httpx.Response(409, text="not json")) == "409 without a problem type"
    assert _cause(httpx.Response(502, text="bad gateway")) == "http_502"


def test_a_503_is_explained_only_when_orderguard_announced_an_outage() -> None:
    problem = {"type": "/problems/storage-unavailable", "status": 503}
    announced = httpx.Response(503, json=problem, headers={"Retry-After": "5"})
    unannounced = httpx.Response(503, json=problem)
    foreign = httpx.Response(503, text="Service Unavailable", headers={"Retry-After": "5"})
    provider = {"type": "/problems/provider-unavailable", "status": 503}
    assert _cause(announced) == "503 storage-unavailable"
    assert _cause(httpx.Response(503, json=provider, headers={"Retry-After": "5"})) == (
        "503 provider-unavailable"
    )
    assert _cause(unannounced) == "http_503"
    assert _cause(foreign) == "http_503"


@pytest.mark.parametrize(
    ("headers", "problem", "cause", "error"),
    [
        ({"Retry-After": "5"}, "provider-unavailable", "503 provider-unavailable", False),
        ({}, "provider-unavailable", "http_503", True),
        ({"Retry-After": "5"}, None, "http_503", True),
    ],
    ids=["announced", "no-retry-after", "not-orderguards"],
)
async def test_a_shopper_who_gave_up_on_a_503_met_an_error_only_if_no_outage_was_announced(
    headers: dict[str, str], problem: str | None, cause: str, error: bool
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if problem is None:
            return httpx.Response(503, text="Service Unavailable", headers=headers)
        return httpx.Response(503, json={"type": f"/problems/{problem}"}, headers=headers)

    simulator = ShopperSimulator("http://x", seed=1, client_timeout_s=1, run_id="r1", max_tries=2)
    checkout = Checkout(0, "declined_then_paid", "DEMO-r1-00000")
    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        got = await simulator._submit(client, checkout, "/v1/orders/o/payments", {}, "k")
    assert got is None and checkout.gave_up
    assert checkout.refusals == [cause, cause]
    assert bool(checkout.errors) is error, checkout.errors


async def test_the_back_office_gives_up_on_an_order_never_paid_after_its_own_wait() -> None:
    """A run bounds the back office's wait for payment by its own wait for the orders: an
    order that stays pending is not refunded, no request but reads is sent, and the wait
    ends near ``paid_within_s`` (the default would be 45 s)."""
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"id": "ord_1", "state": "payment_pending"})

    simulator = ShopperSimulator("http://x", seed=1, client_timeout_s=1, paid_within_s=1.2)
    checkout = Checkout(0, "card", "DEMO-r1-00000")
    checkout.acknowledged.add("ord_1")
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://x") as c:
        started = loop.time()
        await asyncio.wait_for(simulator.back_office_refunds(c, checkout), timeout=10)
        took = loop.time() - started
    assert 1.2 <= took < 5, took
    assert checkout.trouble == "not paid within 1.2 s: no refund asked"
    assert set(sent) == {"GET /v1/orders/ord_1"} and len(sent) >= 3, sent
