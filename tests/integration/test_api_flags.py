"""The order JSON carries its review flags, open and cleared, as the OpenAPI schema says."""

from __future__ import annotations

from datetime import UTC, datetime

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from tests.integration.conftest import Api
from tests.integration.test_payments_api import VISA, place


async def test_openapi_documents_flags_on_the_order(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    flags = components["OrderOut"]["properties"]["flags"]
    assert flags["items"]["$ref"].endswith("/FlagOut")
    assert set(components["FlagOut"]["required"]) == {
        "reason",
        "detail",
        "raised_by",
        "raised_at",
        "cleared_at",
        "cleared_by",
    }
    assert "flag_reason" in components["OrderOut"]["properties"]


async def test_the_order_json_lists_open_and_cleared_flags(api: Api) -> None:
    order = await place(api, VISA)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with api.container.storage() as uow:
        loaded = await uow.orders.get(order["id"], for_update=True)
        assert loaded is not None
        loaded.flag(FlagReason.SHOPPER_REPORT, "where is it?", cause=Cause.SHOPPER, at=at)
        loaded.flag(FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=at)
        loaded.clear_flag(FlagReason.SHOPPER_REPORT, "answered", actor="maria", at=at)
        await uow.orders.save(loaded)
        await uow.commit()

    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    listed = (await api.client.get("/v1/orders")).json()["data"]

    assert detail["flags"] == [
        {
            "reason": "shopper_report",
            "detail": "where is it?",
            "raised_by": "shopper",
            "raised_at": "2026-12-01T09:00:00+00:00",
            "cleared_at": "2026-12-01T09:00:00+00:00",
            "cleared_by": "maria",
        },
        {
            "reason": "duplicate_charge",
            "detail": "pi_2",
            "raised_by": "sweep",
            "raised_at": "2026-12-01T09:00:00+00:00",
            "cleared_at": None,
            "cleared_by": None,
        },
    ]
    assert detail["flag_reason"] == "duplicate charge: pi_2"
    [summary] = [o["flags"] for o in listed if o["id"] == order["id"]]
    assert [(f["reason"], f["cleared_by"]) for f in summary] == [
        ("shopper_report", "maria"),
        ("duplicate_charge", None),
    ]
