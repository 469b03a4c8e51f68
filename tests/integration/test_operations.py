"""Operator actions: refund and cancel over HTTP and the CLI, the actor on the timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from orderguard.bootstrap import Container, build_app, wire
from orderguard.cli import main
from orderguard.cli import operations as cli_operations
from orderguard.config import Settings
from orderguard.providers.base import ChargeRequest, ProviderOutcomeUnknown
from orderguard.providers.memory import InMemoryProvider
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import Api, api_settings, memory_providers
from tests.integration.test_payments_api import THREE_DS, place


async def post(api: Api, path: str, **kwargs: Any) -> httpx.Response:
    """``POST`` as the API wants it: a JSON body, ``{}`` when the action takes no fields."""
    kwargs.setdefault("json", {})
    return await api.client.post(path, **kwargs)


async def test_a_full_refund_refunds_the_order_at_its_provider_as_the_api(api: Api) -> None:
    order = await place(api)
    response = await post(api, f"/v1/orders/{order['id']}/refund")
    assert response.status_code == 200, response.text
    refunded = response.json()
    assert refunded["state"] == "refunded"
    assert [a["state"] for a in refunded["payment_attempts"]] == ["refunded"]
    last = refunded["timeline"][-1]
    assert (last["from_state"], last["to_state"], last["cause"], last["actor"]) == (
        "paid",
        "refunded",
        "api",
        "api:local",
    )
    ref = order["payment_attempts"][0]["provider_ref"]
    assert [(r.provider_ref, r.amount) for r in api.provider.refunds] == [
        (ref, order["amount_total"])
    ]


async def test_a_partial_refund_keeps_the_order_paid_and_notes_it(api: Api) -> None:
    order = await place(api)
    response = await post(api, f"/v1/orders/{order['id']}/refund", json={"amount": 500})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "paid"
    last = response.json()["timeline"][-1]
    assert (last["kind"], last["actor"]) == ("note", "api:local")
    assert last["note"].startswith("partial refund")
    assert [r.amount for r in api.provider.refunds] == [500]


async def test_refunds_that_cannot_be_made_change_nothing(api: Api) -> None:
    unpaid = await place(api, method=None)
    paid = await place(api)
    not_paid = await post(api, f"/v1/orders/{unpaid['id']}/refund")
    too_much = await post(
        api, f"/v1/orders/{paid['id']}/refund", json={"amount": paid["amount_total"] + 1}
    )
    invalid = await post(api, f"/v1/orders/{paid['id']}/refund", json={"amount": 0})
    missing = await post(api, "/v1/orders/ord_nope/refund")
    assert (not_paid.status_code, not_paid.json()["type"]) == (409, "/problems/refund-not-allowed")
    assert not_paid.json()["order_id"] == unpaid["id"]
    assert too_much.status_code == 409
    assert (invalid.status_code, invalid.json()["errors"][0]["loc"]) == (422, ["amount"])
    assert missing.status_code == 404
    assert api.provider.refunds == []
    assert (await api.client.get(f"/v1/orders/{paid['id']}")).json()["state"] == "paid"


async def test_an_order_waiting_for_payment_is_cancelled_once(api: Api) -> None:
    order = await place(api, method=None)
    first = await post(api, f"/v1/orders/{order['id']}/cancel")
    again = await post(api, f"/v1/orders/{order['id']}/cancel")
    assert first.status_code == again.status_code == 200
    assert first.json()["state"] == "cancelled"
    assert again.json()["timeline"] == first.json()["timeline"]
    last = first.json()["timeline"][-1]
    assert (last["to_state"], last["cause"], last["actor"]) == ("cancelled", "api", "api:local")


async def test_cancelling_an_authentication_cancels_the_payment_at_the_provider(api: Api) -> None:
    order = await place(api, THREE_DS)
    ref = order["payment_attempts"][0]["provider_ref"]
    response = await post(api, f"/v1/orders/{order['id']}/cancel")
    assert response.json()["state"] == "cancelled"
    assert response.json()["payment_attempts"][0]["state"] == "failed"
    assert api.provider.payments[ref].canceled
    api.provider.complete_action(ref, approved=True)  # too late: it cannot charge any more
    assert api.provider.payments[ref].result.outcome == "failed"


async def test_an_authentication_that_went_through_is_not_cancelled(api: Api) -> None:
    order = await place(api, THREE_DS)
    api.provider.complete_action(order["payment_attempts"][0]["provider_ref"], approved=True)
    response = await post(api, f"/v1/orders/{order['id']}/cancel")
    assert (response.status_code, response.json()["type"]) == (409, "/problems/cancel-not-allowed")
    assert (await api.client.get(f"/v1/orders/{order['id']}")).json()["state"] == "paid"


async def test_paid_and_unknown_orders_are_not_cancelled(api: Api) -> None:
    paid = await place(api)
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    unknown = await place(api)
    refused_paid = await post(api, f"/v1/orders/{paid['id']}/cancel")
    refused_unknown = await post(api, f"/v1/orders/{unknown['id']}/cancel")
    assert refused_paid.status_code == refused_unknown.status_code == 409
    assert "refund it instead" in refused_paid.json()["detail"]
    assert "ask the provider first (recheck)" in refused_unknown.json()["detail"]
    states = [
        (await api.client.get(f"/v1/orders/{o['id']}")).json()["state"] for o in (paid, unknown)
    ]
    assert states == ["paid", "payment_unknown"]


# The CLI, on a SQLite file shared with an in-process API and the same in-memory provider.


@pytest.fixture
def shop(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryProvider]:
    providers = memory_providers()

    async def open_sql(settings: Settings) -> Container:
        return wire(api_settings(), await open_storage(sqlite_url), providers)

    monkeypatch.setattr(cli_operations, "open_sql", open_sql)
    monkeypatch.setenv("ORDERGUARD_DATABASE_URL", sqlite_url)
    provider = providers.primary.provider
    assert isinstance(provider, InMemoryProvider)
    yield provider


def placed(sqlite_url: str, provider: InMemoryProvider, method: str | None) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        storage = await open_storage(sqlite_url)
        providers = memory_providers()
        providers.slots[0].provider = provider
        app = build_app(container=wire(api_settings(), storage, providers))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
                body = order_body(**({"payment": {"method": method}} if method else {}))
                response = await client.post("/v1/orders", json=body, headers=key())
                document: dict[str, Any] = response.json()
                return document
        finally:
            await storage.close()

    return asyncio.run(run())


def test_the_cli_refunds_and_cancels_naming_the_operator(
    shop: InMemoryProvider, sqlite_url: str
) -> None:
    paid = placed(sqlite_url, shop, "pm_card_visa")
    waiting = placed(sqlite_url, shop, None)
    runner = CliRunner()
    refund = runner.invoke(
        main,
        ["orders", "refund", paid["id"], "--reason", "returned", "--actor", "rita"],
        input="y\n",
    )
    cancel = runner.invoke(main, ["orders", "cancel", waiting["id"], "--actor", "rita"])
    refused = runner.invoke(main, ["orders", "cancel", paid["id"], "--actor", "rita"])
    shown = runner.invoke(main, ["orders", "show", paid["id"]])
    assert refund.exit_code == 0, refund.output
    assert f"{paid['id']}  refunded" in refund.output
    assert f"refunded {paid['amount_total']}, left 0" in refund.output
    assert f"{waiting['id']}  cancelled" in cancel.output
    assert refused.exit_code == 1 and "cannot be cancelled" in refused.output
    assert "paid -> refunded  [support]" in shown.output
    assert [r.amount for r in shop.refunds] == [paid["amount_total"]]
    # the order's payment and its refund, each with the provider's reference
    lines = shown.output.splitlines()
    payments = lines[lines.index("payments:") + 1 : lines.index("refunds:")]
    refunds = lines[lines.index("refunds:") + 1 : lines.index("timeline:")]
    [charge] = payments
    assert "  refunded  " in charge and shop.refunds[0].provider_ref in charge, shown.output
    [given_back] = refunds
    assert "  succeeded  " in given_back and "by rita: returned" in given_back, shown.output
    assert shop.refunds[0].refund_ref in given_back, shown.output

    async def last_actors() -> list[str | None]:
        storage = await open_storage(sqlite_url)
        try:
            async with storage() as uow:
                return [(await uow.orders.timeline(o["id"]))[-1].actor for o in (paid, waiting)]
        finally:
            await storage.close()

    assert asyncio.run(last_actors()) == ["rita", "rita"]


def test_the_cli_refunds_in_part_with_a_reason_only_once_confirmed(
    shop: InMemoryProvider, sqlite_url: str
) -> None:
    paid = placed(sqlite_url, shop, "pm_card_visa")
    runner = CliRunner()
    no_reason = runner.invoke(main, ["orders", "refund", paid["id"], "--amount", "100"])
    declined = runner.invoke(
        main, ["orders", "refund", paid["id"], "--amount", "100", "--reason", "x"], input="n\n"
    )
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert shop.refunds == []
    args = ["orders", "refund", paid["id"], "--amount", "100", "--reason", "one sock", "--yes"]
    first = runner.invoke(main, args)
    second = runner.invoke(main, args)  # a second run is a second refund
    assert first.exit_code == second.exit_code == 0, first.output
    assert f"{paid['id']}  paid" in second.output
    assert f"refunded 200, left {paid['amount_total'] - 200}" in second.output
    assert [r.amount for r in shop.refunds] == [100, 100]
    too_much = runner.invoke(
        main,
        [
            "orders",
            "refund",
            paid["id"],
            "--amount",
            str(paid["amount_total"]),
            "--reason",
            "all",
            "--yes",
        ],
    )
    assert too_much.exit_code == 1
    assert f"only {paid['amount_total'] - 200} EUR left to refund" in too_much.output


def test_the_cli_sweeps_rechecks_and_lists_flagged_and_stuck_orders(
    shop: InMemoryProvider, sqlite_url: str
) -> None:
    shop.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    unknown = placed(sqlite_url, shop, "pm_card_visa")
    runner = CliRunner()
    stuck = runner.invoke(main, ["orders", "list", "--stuck", "--older-than", "0s"])
    not_yet = runner.invoke(main, ["orders", "list", "--stuck", "--older-than", "1h"])
    assert unknown["id"] in stuck.output and unknown["id"] not in not_yet.output
    rechecked = runner.invoke(main, ["orders", "recheck", unknown["id"]])
    assert f"{unknown['id']}  paid" in rechecked.output, rechecked.output
    waiting = placed(sqlite_url, shop, None)
    stray = ChargeRequest("pay_x", waiting["id"], 100, "EUR", "pm_card_visa", "u", "k-stray")
    asyncio.run(shop.create_payment(stray))  # charged for an attempt the order never made
    swept = runner.invoke(main, ["sweep", "--hours", "1"])
    assert swept.exit_code == 0, swept.output
    assert "charges seen 2" in swept.output and "flagged 1" in swept.output
    flagged = runner.invoke(main, ["orders", "list", "--flagged"])
    assert waiting["id"] in flagged.output and unknown["id"] not in flagged.output
    assert "FLAGGED: unexplained charge" in flagged.output
